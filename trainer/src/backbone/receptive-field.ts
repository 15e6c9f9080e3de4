import { readFile } from 'node:fs/promises';
import { composeReceptiveField, type ReceptiveField } from '@protoatlas/shared';
import { decodeMessage, repeatedVarints, stringOf, toInt64 } from '../onnx/protobuf-wire.ts';
import { decodeModel, type OnnxGraph } from '../onnx/onnx-proto.ts';
import { locateTap } from './onnx-tap.ts';
import { applyGraphEdits, type BackboneGraphEdits } from './graph-edits.ts';

/** One spatial layer as far as receptive fields care: kernel, stride, padding before. */
export interface SpatialLayer {
  kernel: number;
  stride: number;
  padding: number;
}

/**
 * TensorFlow 'same' padding puts the odd pixel after: for input n, kernel k,
 * stride s the padding before is floor(max((ceil(n/s)-1)*s + k - n, 0) / 2).
 */
export function tfSamePadding(inputSize: number, kernel: number, stride: number): number {
  const out = Math.ceil(inputSize / stride);
  return Math.floor(Math.max((out - 1) * stride + kernel - inputSize, 0) / 2);
}

/** The small CNN: per stage a 3x3 stride-2 conv then (convsPerStage 2) a 3x3 stride-1 conv, all 'same'. */
export function smallCnnReceptiveField(inputSize: number, stages: number, convsPerStage = 2): ReceptiveField {
  const layers: SpatialLayer[] = [];
  let n = inputSize;
  for (let s = 0; s < stages; s++) {
    layers.push({ kernel: 3, stride: 2, padding: tfSamePadding(n, 3, 2) });
    n = Math.ceil(n / 2);
    if (convsPerStage === 2) layers.push({ kernel: 3, stride: 1, padding: tfSamePadding(n, 3, 1) });
  }
  return composeReceptiveField(layers);
}

const SPATIAL_OPS = new Set(['Conv', 'QLinearConv', 'ConvInteger', 'MaxPool', 'AveragePool', 'QLinearAveragePool']);

function intsAttr(attrs: Uint8Array[], name: string): number[] | null {
  for (const a of attrs) {
    const f = decodeMessage(a);
    if (stringOf(f, 1) !== name) continue;
    const ints = repeatedVarints(f, 8).map(toInt64);
    if (ints.length) return ints;
  }
  return null;
}

/**
 * Receptive field of a tensor in an ONNX graph, propagated node by node
 * (graph nodes are topologically sorted): convolutions and pools compose,
 * element-wise joins (residual Adds) keep their widest input, everything else
 * passes its first input's field through. Square kernels are assumed (height axis used).
 */
export function onnxReceptiveField(graph: OnnxGraph, tensor: string): ReceptiveField {
  const weights = new Map(graph.initializers.map((t) => [t.name, t.dims]));
  const fields = new Map<string, ReceptiveField>();
  for (const i of graph.inputs) fields.set(i.name, { size: 1, stride: 1, start: 0.5 });
  for (const node of graph.nodes) {
    const ins = node.inputs.map((n) => fields.get(n)).filter((f): f is ReceptiveField => f !== undefined);
    if (!ins.length) continue;
    let rf = ins.reduce((a, b) => (b.size > a.size ? b : a));
    if (SPATIAL_OPS.has(node.opType)) {
      const wName = node.opType === 'QLinearConv' ? node.inputs[3] : node.inputs[1];
      const kernel = intsAttr(node.attributes, 'kernel_shape')?.[0] ?? weights.get(wName)?.[2] ?? 1;
      const stride = intsAttr(node.attributes, 'strides')?.[0] ?? 1;
      const dilation = intsAttr(node.attributes, 'dilations')?.[0] ?? 1;
      const pads = intsAttr(node.attributes, 'pads');
      // A dilated kernel spans dilation * (k - 1) + 1 input cells.
      rf = composeOnto(rf, { kernel: dilation * (kernel - 1) + 1, stride, padding: pads?.[0] ?? 0 });
    }
    for (const o of node.outputs) fields.set(o, rf);
    if (node.outputs.includes(tensor)) break;
  }
  const rf = fields.get(tensor);
  if (!rf) throw new Error(`receptive field: tensor "${tensor}" is not reachable from the graph inputs`);
  return rf;
}

function composeOnto(rf: ReceptiveField, l: SpatialLayer): ReceptiveField {
  return {
    size: rf.size + (l.kernel - 1) * rf.stride,
    start: rf.start + ((l.kernel - 1) / 2 - l.padding) * rf.stride,
    stride: rf.stride * l.stride,
  };
}

/** Receptive field of the tap of an ONNX backbone file. */
export async function onnxFileReceptiveField(
  path: string,
  tap: string,
  edits: BackboneGraphEdits = {},
): Promise<ReceptiveField> {
  const published = decodeModel(new Uint8Array(await readFile(path))).graph;
  const graph = applyGraphEdits(published, edits);
  return onnxReceptiveField(graph, locateTap(graph, tap).tensor);
}

/** Keras layers up to (and including) `cutLayer`, in order: Conv2D, DepthwiseConv2D, pools, ZeroPadding2D. */
export function layersReceptiveField(
  topology: { config?: { layers?: { class_name: string; name?: string; config: Record<string, unknown> }[] } },
  inputSize: number,
  cutLayer: string,
): ReceptiveField {
  // Nested Sequential/Model layers (Teachable Machine wraps MobileNet twice) are flattened in order.
  type KerasLayer = { class_name: string; name?: string; config: Record<string, unknown> & { layers?: KerasLayer[] } };
  const flatten = (ls: KerasLayer[]): KerasLayer[] =>
    ls.flatMap((l) => (Array.isArray(l.config?.layers) ? flatten(l.config.layers) : [l]));
  const layers = flatten((topology.config?.layers ?? []) as KerasLayer[]);
  let rf: ReceptiveField = { size: 1, stride: 1, start: 0.5 };
  let n = inputSize;
  let pendingPad = 0;
  for (const l of layers) {
    const c = l.config;
    const pair = (v: unknown, d: number) =>
      Array.isArray(v) ? Number(Array.isArray(v[0]) ? v[0][0] : v[0]) : v === undefined ? d : Number(v);
    if (l.class_name === 'ZeroPadding2D') {
      // padding: n, [n, m] (rows, cols) or [[top, bottom], [left, right]]
      const p = c.padding;
      const rows = Array.isArray(p) ? p[0] : p;
      const [before, after] = Array.isArray(rows)
        ? [Number(rows[0]), Number(rows[1])]
        : [Number(rows ?? 1), Number(rows ?? 1)];
      pendingPad += before;
      n += before + after;
    } else if (['Conv2D', 'DepthwiseConv2D', 'MaxPooling2D', 'AveragePooling2D'].includes(l.class_name)) {
      const k = pair(c.kernel_size ?? c.pool_size, 1);
      const s = pair(c.strides, l.class_name.endsWith('Pooling2D') ? k : 1);
      const pad = pendingPad + (c.padding === 'same' ? tfSamePadding(n, k, s) : 0);
      rf = composeOnto(rf, { kernel: k, stride: s, padding: pad });
      n = c.padding === 'same' ? Math.ceil(n / s) : Math.floor((n - k) / s) + 1;
      pendingPad = 0;
    }
    if ((c.name ?? l.name) === cutLayer) break;
  }
  return rf;
}

/** The receptive field of a configured backbone's feature map (null when it cannot be derived). */
export async function backboneReceptiveField(
  b:
    | { kind: 'small-cnn'; inputSize: number; channels: number[]; convsPerStage?: number }
    | ({ kind: 'onnx'; tap: string } & BackboneGraphEdits)
    | { kind: 'tfjs-layers'; cutLayer: string; preprocess: { size: number } },
  weightsPath: string | null,
): Promise<ReceptiveField | null> {
  if (b.kind === 'small-cnn') return smallCnnReceptiveField(b.inputSize, b.channels.length, b.convsPerStage ?? 2);
  if (!weightsPath) return null;
  if (b.kind === 'onnx') return onnxFileReceptiveField(weightsPath, b.tap, b);
  const json = JSON.parse(await readFile(weightsPath, 'utf8')) as {
    modelTopology?: { config?: unknown; model_config?: { config?: unknown } };
  };
  const topo = json.modelTopology?.model_config ?? json.modelTopology;
  return layersReceptiveField(topo as Parameters<typeof layersReceptiveField>[0], b.preprocess.size, b.cutLayer);
}

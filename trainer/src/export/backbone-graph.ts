/**
 * Backbones as ONNX graphs, all ending in an NCHW feature map for head-graph.ts:
 *
 * - tfjs-layers models (the small CNN, MobileNetV2 cut at a layer): every layer
 *   becomes ONNX nodes in NCHW, the layout ONNX Conv wants (Keras is NHWC, so
 *   kernels are transposed and channel axes remapped). BatchNormalization folds
 *   into the Conv before it and ZeroPadding2D into the Conv after it (fold.ts).
 * - ONNX models: the model is tapped (onnx-tap.ts insertTap: the tap tensor,
 *   dequantised when it is int8/uint8, becomes the output; the classifier is
 *   pruned) and the head is appended to its graph.
 *
 * The exported model's single input is always named `image`, in one of two
 * formats (ImageInputSpec records which, for the bundle manifest):
 * - 'nchw-normalized' (default): float32 [N, 3, S, S], RGB, values
 *   (pixel / 255 - mean) / std with mean/std from the run's preprocess spec.
 * - 'nhwc-rgb255': float32 [N, S, S, 3], RGB pixel values 0..255; the transpose
 *   and normalisation run inside the graph (decode.ts toNHWC's arithmetic).
 * Either way the image is already resized to S x S (stretched, as in training).
 */
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import type { PreprocessSpec } from '../backbone/types.ts';
import {
  decodeModel,
  opsetImports,
  makeValueInfo,
  OnnxDataType,
  type OnnxDim,
  type OnnxModel,
} from '../onnx/onnx-proto.ts';
import { insertTap, tapForCompute, type OnnxCompute } from '../backbone/onnx-tap.ts';
import type { BackboneGraphEdits } from '../backbone/graph-edits.ts';
import { decodeMessage, messageField, stringOf, varintField } from '../onnx/protobuf-wire.ts';
import type { AttrValue, GraphBuilder } from '../onnx/graph-builder.ts';

// ---- the image input --------------------------------------------------------

export type InputFormat = 'nchw-normalized' | 'nhwc-rgb255';

export const IMAGE_INPUT = 'image';

export interface ImageInputSpec {
  name: string;
  format: InputFormat;
  layout: 'NCHW' | 'NHWC';
  dtype: 'float32';
  shape: OnnxDim[];
  /** Side S of the square input, and the normalisation (applied by the caller for 'nchw-normalized', by the graph for 'nhwc-rgb255'). */
  preprocess: PreprocessSpec;
  description: string;
}

export function imageInputSpec(format: InputFormat, pre: PreprocessSpec): ImageInputSpec {
  const s = pre.size;
  const norm = `mean [${pre.mean.join(', ')}], std [${pre.std.join(', ')}]`;
  return format === 'nchw-normalized'
    ? {
        name: IMAGE_INPUT,
        format,
        layout: 'NCHW',
        dtype: 'float32',
        shape: ['N', 3, s, s],
        preprocess: pre,
        description: `float32 NCHW RGB ${s}x${s}, (pixel/255 - mean) / std with ${norm}`,
      }
    : {
        name: IMAGE_INPUT,
        format,
        layout: 'NHWC',
        dtype: 'float32',
        shape: ['N', s, s, 3],
        preprocess: pre,
        description: `float32 NHWC RGB ${s}x${s}, pixel values 0..255 (normalised in the graph: ${norm})`,
      };
}

/**
 * Nodes from the `image` input to the normalised NCHW tensor the backbone reads.
 * Returns that tensor's name: `image` itself for 'nchw-normalized', else `target`
 * (or a fresh name) produced by Transpose → Mul → Add.
 */
export function addImageInput(b: GraphBuilder, spec: ImageInputSpec, target?: string): string {
  b.claim(spec.name);
  if (spec.format === 'nchw-normalized') return spec.name;
  const pre = spec.preprocess;
  // (x/255 - mean)/std as one multiply-add per channel, as decode.ts toNHWC computes it.
  const scale = [0, 1, 2].map((c) => 1 / (255 * pre.std[c]));
  const shift = [0, 1, 2].map((c) => -pre.mean[c] / pre.std[c]);
  const nchw = b.add('Transpose', [spec.name], 'image_nchw', { perm: [0, 3, 1, 2] });
  const scaled = b.add('Mul', [nchw, b.floatInit('image_scale', [1, 3, 1, 1], scale)], 'image_scaled');
  return b.add(
    'Add',
    [scaled, b.floatInit('image_shift', [1, 3, 1, 1], shift)],
    target ?? 'image_normalized',
    {},
    target ? { output: target } : {},
  );
}

// ---- tfjs-layers models -------------------------------------------------------

export interface LayersGraph {
  /** NCHW feature map tensor. */
  features: string;
  channels: number;
  height: number;
  width: number;
  /** Layer class names converted, with counts (for reports and tests). */
  layerCounts: Map<string, number>;
}

type Layer = LayersModel['layers'][number];

interface Container {
  name: string;
  inputs: SymbolicTensor[];
  outputs: SymbolicTensor[];
  layers: Layer[];
}

function isContainer(l: unknown): l is Container {
  const c = l as Container;
  return Array.isArray(c.layers) && Array.isArray(c.inputs) && Array.isArray(c.outputs);
}

/**
 * Converts a tfjs-layers model (NHWC image → NHWC feature map, inference mode)
 * into ONNX nodes reading the NCHW tensor `input`. Nested models are inlined.
 */
export function addLayersModelNodes(b: GraphBuilder, model: LayersModel, input: string): LayersGraph {
  if (model.inputs.length !== 1 || model.outputs.length !== 1)
    throw new Error('ONNX export: the tfjs model must have one input and one output');
  const out = model.outputs[0].shape;
  if (out.length !== 4 || out.slice(1).some((d) => d === null))
    throw new Error(`ONNX export: the tfjs model output must be an NHWC map of known size, got ${JSON.stringify(out)}`);
  const conv = new LayersConverter(b);
  const [features] = conv.container(model as unknown as Container, [input]);
  return { features, channels: out[3]!, height: out[1]!, width: out[2]!, layerCounts: conv.counts };
}

interface Scope {
  id: number;
  /** Symbolic tensor id → ONNX tensor name. */
  names: Map<number, string>;
}

class LayersConverter {
  readonly b: GraphBuilder;
  readonly counts = new Map<string, number>();
  /** Outputs of each converted layer call, by scope, layer and node index (multi-output calls convert once). */
  private readonly calls = new Map<string, string[]>();
  private scopes = 0;

  constructor(b: GraphBuilder) {
    this.b = b;
  }

  container(c: Container, inputs: string[]): string[] {
    if (c.inputs.length !== inputs.length)
      throw new Error(`ONNX export: nested model ${c.name} takes ${c.inputs.length} inputs, got ${inputs.length}`);
    // A scope per call of a container, so a nested model used twice converts twice.
    const scope: Scope = { id: this.scopes++, names: new Map() };
    c.inputs.forEach((t, i) => scope.names.set(t.id, inputs[i]));
    return c.outputs.map((t) => this.tensor(t, scope));
  }

  private tensor(t: SymbolicTensor, scope: Scope): string {
    const known = scope.names.get(t.id);
    if (known !== undefined) return known;
    const layer = t.sourceLayer as Layer;
    const key = `${scope.id}:${layer.id}:${t.nodeIndex}`;
    let outs = this.calls.get(key);
    if (!outs) {
      const ins = t.inputs.map((u) => this.tensor(u, scope));
      outs = isContainer(layer) ? this.container(layer, ins) : [this.layer(layer, ins, t)];
      this.calls.set(key, outs);
    }
    const name = outs[t.outputTensorIndex ?? 0];
    scope.names.set(t.id, name);
    return name;
  }

  /** One plain layer call; `t` is its output (for shapes). */
  private layer(layer: Layer, ins: string[], t: SymbolicTensor): string {
    const cls = layer.getClassName();
    this.counts.set(cls, (this.counts.get(cls) ?? 0) + 1);
    const cfg = layer.getConfig() as Record<string, unknown>;
    const base = layer.name;
    const b = this.b;
    const inShape = (t.inputs[0]?.shape ?? []) as (number | null)[];
    if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast')
      throw new Error(
        `ONNX export: layer ${base} uses dataFormat ${String(cfg.dataFormat)}; only channelsLast is supported`,
      );
    switch (cls) {
      case 'Conv2D':
      case 'DepthwiseConv2D':
        return this.conv(layer, cls === 'DepthwiseConv2D', ins[0], inShape, cfg);
      case 'BatchNormalization': {
        const axis = cfg.axis as number | number[];
        if (
          !(
            axis === -1 ||
            axis === 3 ||
            (Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3))
          ) ||
          inShape.length !== 4
        ) {
          throw new Error(`ONNX export: BatchNormalization ${base} must normalise the channel axis of a 4-d tensor`);
        }
        const w = weightsBySuffix(layer);
        const c = inShape[3]!;
        const gamma = w.get('gamma') ?? new Float32Array(c).fill(1);
        const beta = w.get('beta') ?? new Float32Array(c);
        const mean = w.get('moving_mean');
        const variance = w.get('moving_variance');
        if (!mean || !variance) throw new Error(`ONNX export: BatchNormalization ${base} lacks moving statistics`);
        const inputs = [
          ins[0],
          b.floatInit(`${base}/gamma`, [c], gamma),
          b.floatInit(`${base}/beta`, [c], beta),
          b.floatInit(`${base}/mean`, [c], mean),
          b.floatInit(`${base}/var`, [c], variance),
        ];
        return b.add('BatchNormalization', inputs, base, { epsilon: { float: cfg.epsilon as number } });
      }
      case 'ReLU': {
        const max = cfg.maxValue as number | null | undefined;
        if (max === null || max === undefined) return b.add('Relu', ins, base);
        return b.add(
          'Clip',
          [ins[0], b.floatInit(`${base}/min`, [], [0]), b.floatInit(`${base}/max`, [], [max])],
          base,
        );
      }
      case 'LeakyReLU':
        return b.add('LeakyRelu', ins, base, { alpha: { float: cfg.alpha as number } });
      case 'Activation':
        return activation(b, cfg.activation as string, ins[0], base);
      case 'ZeroPadding2D': {
        const [[top, bottom], [left, right]] = cfg.padding as [[number, number], [number, number]];
        return b.add('Pad', [ins[0], b.int64Init(`${base}/pads`, [8], [0, 0, top, left, 0, 0, bottom, right])], base, {
          mode: 'constant',
        });
      }
      case 'Add':
      case 'Multiply':
        return ins
          .slice(1)
          .reduce(
            (acc, x, i) => b.add(cls === 'Add' ? 'Add' : 'Mul', [acc, x], i === ins.length - 2 ? base : `${base}/${i}`),
            ins[0],
          );
      case 'Concatenate': {
        const rank = inShape.length;
        const axis = ((cfg.axis as number) + rank) % rank;
        // NHWC axis → NCHW axis.
        const onnxAxis = rank === 4 ? [0, 2, 3, 1][axis] : axis;
        return b.add('Concat', ins, base, { axis: onnxAxis });
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D':
        return this.pool(cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', ins[0], inShape, cfg, base);
      case 'Dropout':
      case 'SpatialDropout2D':
      case 'GaussianNoise':
      case 'GaussianDropout':
        return ins[0]; // identity at inference
      default:
        throw new Error(`ONNX export: tfjs layer ${base} of class ${cls} is not supported yet`);
    }
  }

  private conv(
    layer: Layer,
    depthwise: boolean,
    x: string,
    inShape: (number | null)[],
    cfg: Record<string, unknown>,
  ): string {
    const b = this.b;
    const base = layer.name;
    const w = weightsBySuffix(layer);
    const kernel = w.get(depthwise ? 'depthwise_kernel' : 'kernel');
    const kShape = layer.weights.find((v) => v.originalName.endsWith(depthwise ? '/depthwise_kernel' : '/kernel'))
      ?.shape as number[] | undefined;
    if (!kernel || !kShape) throw new Error(`ONNX export: ${base} has no kernel weight`);
    const [kh, kw, cin, k3] = kShape;
    // Keras [kh, kw, in, out] → ONNX [out, in, kh, kw]; depthwise [kh, kw, in, mult] → [in*mult, 1, kh, kw] (out channel = in*mult + k in both).
    const cout = depthwise ? cin * k3 : k3;
    const perOut = depthwise ? 1 : cin;
    const onnxW = new Float32Array(cout * perOut * kh * kw);
    for (let i = 0; i < kh; i++)
      for (let j = 0; j < kw; j++)
        for (let c = 0; c < cin; c++)
          for (let k = 0; k < k3; k++) {
            const src = ((i * kw + j) * cin + c) * k3 + k;
            const dst = depthwise ? ((c * k3 + k) * kh + i) * kw + j : ((k * cin + c) * kh + i) * kw + j;
            onnxW[dst] = kernel[src];
          }
    const strides = cfg.strides as number[];
    const dilations = (cfg.dilationRate as number[] | number | undefined) ?? [1, 1];
    const dil = Array.isArray(dilations)
      ? dilations.length === 1
        ? [dilations[0], dilations[0]]
        : dilations
      : [dilations, dilations];
    const attrs: Record<string, AttrValue> = {
      kernel_shape: [kh, kw],
      strides,
      dilations: dil,
      pads: spatialPads(cfg.padding as string, inShape, [kh, kw], strides, dil, base),
      group: depthwise ? cin : 1,
    };
    const inputs = [x, b.floatInit(`${base}/w`, [cout, perOut, kh, kw], onnxW)];
    const bias = cfg.useBias ? w.get('bias') : undefined;
    if (bias) inputs.push(b.floatInit(`${base}/b`, [cout], bias));
    const act = (cfg.activation as string | undefined) ?? 'linear';
    const y = b.add('Conv', inputs, act === 'linear' ? base : `${base}/conv`, attrs);
    return act === 'linear' ? y : activation(b, act, y, base);
  }

  private pool(
    op: 'MaxPool' | 'AveragePool',
    x: string,
    inShape: (number | null)[],
    cfg: Record<string, unknown>,
    base: string,
  ): string {
    const size = cfg.poolSize as number[];
    const strides = (cfg.strides as number[] | null) ?? size;
    // count_include_pad stays 0: TF averages over the valid pixels only.
    return this.b.add(op, [x], base, {
      kernel_shape: size,
      strides,
      pads: spatialPads(cfg.padding as string, inShape, size, strides, [1, 1], base),
    });
  }
}

/** ONNX pads [top, left, bottom, right] for Keras 'valid'/'same' (TF: odd padding goes bottom/right). */
export function spatialPads(
  padding: string,
  inShape: (number | null)[],
  kernel: number[],
  strides: number[],
  dilations: number[],
  layer = '',
): number[] {
  if (padding === 'valid') return [0, 0, 0, 0];
  if (padding !== 'same') throw new Error(`ONNX export: ${layer} padding "${padding}" is not supported`);
  const before: number[] = [];
  const after: number[] = [];
  for (let a = 0; a < 2; a++) {
    const size = inShape[1 + a];
    if (size === null || size === undefined)
      throw new Error(`ONNX export: ${layer} needs a known input size for 'same' padding`);
    const eff = (kernel[a] - 1) * dilations[a] + 1;
    const out = Math.ceil(size / strides[a]);
    const total = Math.max((out - 1) * strides[a] + eff - size, 0);
    before.push(Math.floor(total / 2));
    after.push(total - Math.floor(total / 2));
  }
  return [...before, ...after];
}

function weightsBySuffix(layer: Layer): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const w of layer.weights)
    out.set(w.originalName.split('/').pop()!, Float32Array.from(w.read().dataSync() as Float32Array));
  return out;
}

/** Keras activation names (tfjs serialises them as these strings). */
function activation(b: GraphBuilder, name: string, x: string, base: string): string {
  switch (name) {
    case 'linear':
      return x;
    case 'relu':
      return b.add('Relu', [x], base);
    case 'relu6':
      return b.add('Clip', [x, b.floatInit(`${base}/min`, [], [0]), b.floatInit(`${base}/max`, [], [6])], base);
    case 'sigmoid':
      return b.add('Sigmoid', [x], base);
    case 'tanh':
      return b.add('Tanh', [x], base);
    case 'swish':
      return b.add('Mul', [x, b.add('Sigmoid', [x], `${base}/sigmoid`)], base);
    default:
      throw new Error(`ONNX export: activation "${name}" (layer ${base}) is not supported yet`);
  }
}

// ---- ONNX models ------------------------------------------------------------

export interface TappedOnnxBackbone {
  /** The backbone graph cut at the tap; its outputs are dropped by the caller. */
  model: OnnxModel;
  /** The model's own image input (NCHW, normalised). */
  input: string;
  /** Float NCHW feature map (after the DequantizeLinear for int8 taps). */
  features: string;
  /** [N, D, H, W] when the model records it, else undefined entries. */
  featureShape: OnnxDim[] | undefined;
  quantized: boolean;
  /** ai.onnx opset of the source model. */
  opset: number;
}

export function tapOnnxBackbone(
  bytes: Uint8Array,
  tap = 'auto',
  compute: OnnxCompute = 'int8',
  edits: BackboneGraphEdits = {},
): TappedOnnxBackbone {
  const t = tapForCompute(insertTap(bytes, { tap, ...edits }), compute);
  const model = decodeModel(t.bytes);
  const out = model.graph.outputs.find((o) => o.name === t.floatOutput);
  const opset = opsetImports(model).get('') ?? 0;
  return {
    model,
    input: t.input,
    features: t.floatOutput,
    featureShape: out?.shape,
    quantized: !!t.quantization,
    opset,
  };
}

/**
 * ai.onnx ops whose inputs or meaning changed between opset 11 and 13: a graph
 * using them cannot just be relabelled as opset 13.
 */
const CHANGED_BY_OPSET_13 = new Set(['Squeeze', 'Unsqueeze', 'ReduceSum', 'Split', 'Softmax', 'LogSoftmax', 'Hardmax']);

/** The opset the combined model can declare: the backbone's own, raised to `min` when that is safe. */
export function exportOpset(backbone: TappedOnnxBackbone, min = 13): number {
  if (backbone.opset >= min) return backbone.opset;
  if (backbone.opset < 11)
    throw new Error(`ONNX export: the backbone uses opset ${backbone.opset}; export needs 11 or later`);
  const blocking = backbone.model.graph.nodes.filter(
    (n) => (n.domain === '' || n.domain === 'ai.onnx') && CHANGED_BY_OPSET_13.has(n.opType),
  );
  if (blocking.length) {
    throw new Error(
      `ONNX export: the tapped backbone (opset ${backbone.opset}) has ${[...new Set(blocking.map((n) => n.opType))].join(', ')} nodes that changed in opset ${min}; convert the backbone to opset ${min} first`,
    );
  }
  return min;
}

/** The model with its ai.onnx opset import set to `opset` and ir_version at least `minIr`. */
export function withOpset(model: OnnxModel, opset: number, minIr: number): OnnxModel {
  const other = model.other.map((f) => {
    if (f.no === 1 && f.wire === 0 && f.value < BigInt(minIr)) return varintField(1, minIr);
    if (f.no === 8 && f.wire === 2) {
      const o = decodeMessage(f.value);
      if (stringOf(o, 1) === '' || stringOf(o, 1) === 'ai.onnx') return messageField(8, [varintField(2, opset)]);
    }
    return f;
  });
  return { ...model, other };
}

/** Rename a graph input everywhere it is read (the backbone's own input becomes `image`). */
export function renameInput(model: OnnxModel, from: string, to: string, shape: OnnxDim[]): OnnxModel {
  const g = model.graph;
  const nodes = g.nodes.map((n) =>
    n.inputs.includes(from) ? { ...n, inputs: n.inputs.map((t) => (t === from ? to : t)) } : n,
  );
  const inputs = g.inputs.map((i) => (i.name === from ? makeValueInfo(to, OnnxDataType.FLOAT, shape) : i));
  return { ...model, graph: { ...g, nodes, inputs, valueInfo: g.valueInfo.filter((v) => v.name !== from) } };
}

/** Names of every tensor in a graph (to keep new names clear of them). */
export function graphNames(model: OnnxModel): Set<string> {
  const g = model.graph;
  const names = new Set<string>();
  for (const n of g.nodes) for (const t of [...n.inputs, ...n.outputs]) names.add(t);
  for (const t of g.initializers) names.add(t.name);
  for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) names.add(v.name);
  return names;
}

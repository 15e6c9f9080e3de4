/**
 * Output stride by dilation (DeepLab, Chen et al. 2017): a convolution whose
 * stride would take the feature map below 1/outputStride of the input keeps
 * stride 1, and every later spatial kernel is dilated by the stride it skipped.
 * The weights stay as they are, so a pretrained network gives a finer grid
 * (MobileNetV2: 14×14 instead of 7×7 at 224 px) whose features still mean what
 * they were trained to mean.
 */
import { decodeMessage, repeatedVarints, stringOf, toInt64 } from '../onnx/protobuf-wire.ts';
import { attributeName, makeAttribute, type OnnxGraph, type OnnxNode } from '../onnx/onnx-proto.ts';

/** The ops whose kernels slide over the map (QLinear ones carry the same attributes). */
const CONV_OPS = new Set(['Conv', 'QLinearConv', 'ConvInteger']);
const POOL_OPS = new Set(['MaxPool', 'AveragePool', 'QLinearAveragePool']);

export type OutputStride = 8 | 16 | 32;

function intsAttr(node: OnnxNode, name: string): number[] | null {
  for (const a of node.attributes) {
    const f = decodeMessage(a);
    if (stringOf(f, 1) !== name) continue;
    return repeatedVarints(f, 8).map(toInt64);
  }
  return null;
}

function stringAttr(node: OnnxNode, name: string): string | null {
  for (const a of node.attributes) {
    const f = decodeMessage(a);
    if (stringOf(f, 1) === name) return stringOf(f, 4);
  }
  return null;
}

function withAttributes(node: OnnxNode, set: Record<string, number[]>): OnnxNode {
  const kept = node.attributes.filter((a) => !(attributeName(a) in set));
  return { ...node, attributes: [...kept, ...Object.entries(set).map(([k, v]) => makeAttribute(k, v))] };
}

/**
 * Rewrites strides, dilations and pads so that no tensor is smaller than
 * input/outputStride. Returns the graph unchanged when it never strides that far.
 * Value infos of tensors whose size changed are dropped (their recorded shapes
 * would be wrong); runtimes infer them again.
 */
export function setOutputStride(graph: OnnxGraph, outputStride: number): OnnxGraph {
  if (!Number.isInteger(outputStride) || outputStride < 1 || (outputStride & (outputStride - 1)) !== 0) {
    throw new Error(`output stride must be a power of two, got ${outputStride}`);
  }
  const kernels = new Map(graph.initializers.map((t) => [t.name, t.dims]));
  const stride = new Map<string, number>();
  const rate = new Map<string, number>();
  for (const i of graph.inputs) {
    stride.set(i.name, 1);
    rate.set(i.name, 1);
  }
  const changed = new Set<string>();
  const nodes = graph.nodes.map((node) => {
    const ins = node.inputs.filter((n) => stride.has(n));
    const inStride = ins.reduce((a, n) => Math.max(a, stride.get(n)!), 1);
    const inRate = ins.reduce((a, n) => Math.max(a, rate.get(n)!), 1);
    let outStride = inStride;
    let outRate = inRate;
    let out = node;
    const spatial = CONV_OPS.has(node.opType) || POOL_OPS.has(node.opType);
    if (spatial && ins.length) {
      const autoPad = stringAttr(node, 'auto_pad');
      if (autoPad && autoPad !== 'NOTSET') {
        throw new Error(
          `output stride: node ${node.name || node.opType} uses auto_pad=${autoPad}; only explicit pads can be rewritten`,
        );
      }
      const s = intsAttr(node, 'strides')?.[0] ?? 1;
      const weight = node.opType === 'QLinearConv' ? node.inputs[3] : node.inputs[1];
      const k = intsAttr(node, 'kernel_shape')?.[0] ?? kernels.get(weight)?.[2] ?? 1;
      const skip = inStride * s > outputStride;
      if (skip && POOL_OPS.has(node.opType)) {
        throw new Error(
          `output stride: pooling node ${node.name || node.opType} strides past ${outputStride}; it cannot be dilated`,
        );
      }
      const dilation = k > 1 ? inRate : 1;
      if (skip || dilation > 1) {
        const pad = (dilation * (k - 1)) / 2;
        if (!Number.isInteger(pad))
          throw new Error(
            `output stride: node ${node.name} has an even kernel (${k}); it cannot be dilated symmetrically`,
          );
        const set: Record<string, number[]> = {};
        if (skip) set.strides = [1, 1];
        if (dilation > 1) {
          set.dilations = [dilation, dilation];
          set.pads = [pad, pad, pad, pad];
        }
        out = withAttributes(node, set);
      }
      if (skip) outRate = inRate * s;
      else outStride = inStride * s;
    }
    for (const o of node.outputs) {
      stride.set(o, outStride);
      rate.set(o, outRate);
      if (outRate > 1) changed.add(o);
    }
    return out;
  });
  if (!changed.size) return graph;
  return { ...graph, nodes, valueInfo: graph.valueInfo.filter((v) => !changed.has(v.name)) };
}

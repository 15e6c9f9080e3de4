/**
 * Graph surgery that turns a classifier ONNX model into a feature extractor:
 * expose an intermediate tensor (the "tap") as a graph output, dequantising it
 * when it is an int8/uint8 tensor of a QLinear model, optionally wrap the model
 * in NHWC transposes, and prune everything the new outputs do not need (the
 * classifier head), which makes inference a little faster.
 */
import {
  OnnxDataType,
  decodeModel,
  encodeModel,
  makeAttribute,
  makeNode,
  makeValueInfo,
  tensorScalar,
  type OnnxDim,
  type OnnxGraph,
  type OnnxNode,
  type OnnxTensor,
} from '../onnx/onnx-proto.ts';
import { floatCompute } from '../onnx/float-compute.ts';
import { applyGraphEdits, type BackboneGraphEdits } from './graph-edits.ts';

export interface TapQuantization {
  scale: number;
  zeroPoint: number;
  /** OnnxDataType of the raw tensor (UINT8 or INT8). */
  elemType: number;
  scaleName: string;
  zeroPointName?: string;
}

/** Where the tap is, and whether it is a quantised tensor. */
export interface TapLocation {
  tensor: string;
  quantization?: TapQuantization;
}

/** With the config's graph edits (output stride, input blur; graph-edits.ts), applied before the tap. */
export interface TapOptions extends BackboneGraphEdits {
  /** Tensor name, or 'auto' = input of the last (QLinear)GlobalAveragePool node. */
  tap: string;
  /** Keep the model's original outputs (e.g. logits) next to the tap. Default false: pruned, faster. */
  keepOriginalOutputs?: boolean;
  /** The model is NCHW: add Transposes so that it takes NHWC input and gives NHWC outputs. */
  nhwc?: boolean;
}

export interface TappedModel {
  bytes: Uint8Array;
  tensor: string;
  /** Graph input to feed. */
  input: string;
  /** Float feature output (dequantised when the tap is quantised). */
  floatOutput: string;
  /** Raw quantised output (same values as stored by the model), when the tap is quantised. */
  rawOutput?: string;
  quantization?: TapQuantization;
  /**
   * Float compute of a quantised tap: the 8-bit grid the published network rounds this tensor to. Its float
   * features can be stored on that grid at half a step's rounding error.
   */
  grid?: TapQuantization;
}

/** Finds the tap tensor and, when it is quantised, its scale and zero point. */
export function locateTap(graph: OnnxGraph, tap: string): TapLocation {
  const tensor = tap === 'auto' ? autoTap(graph) : tap;
  const produced = graph.nodes.some((n) => n.outputs.includes(tensor)) || graph.inputs.some((i) => i.name === tensor);
  if (!produced) throw new Error(`ONNX tap: no tensor named "${tensor}" in the graph`);
  const init = new Map(graph.initializers.map((t) => [t.name, t]));
  for (const node of graph.nodes) {
    for (let k = 0; k < node.inputs.length; k++) {
      if (node.inputs[k] !== tensor) continue;
      const q = quantParamsAt(node, k, init);
      if (q) return { tensor, quantization: q };
    }
  }
  return { tensor };
}

function autoTap(graph: OnnxGraph): string {
  const pools = graph.nodes.filter((n) => n.opType === 'GlobalAveragePool' || n.opType === 'QLinearGlobalAveragePool');
  const last = pools[pools.length - 1];
  if (!last)
    throw new Error(
      "ONNX tap 'auto': the graph has no GlobalAveragePool or QLinearGlobalAveragePool node; give the tap tensor name",
    );
  return last.inputs[0];
}

/** Quantisation parameters of input k of a node that consumes quantised tensors, if it is one. */
function quantParamsAt(node: OnnxNode, k: number, init: Map<string, OnnxTensor>): TapQuantization | undefined {
  let isQuantInput = false;
  if (node.opType === 'DequantizeLinear') isQuantInput = k === 0;
  else if (node.opType === 'QLinearConcat') isQuantInput = k >= 2 && (k - 2) % 3 === 0;
  // QLinearConv/MatMul/Add/Mul/GlobalAveragePool/...: (x, x_scale, x_zero_point) triples from index 0.
  else if (node.opType.startsWith('QLinear')) isQuantInput = k % 3 === 0;
  if (!isQuantInput) return undefined;
  const scaleName = node.inputs[k + 1];
  const zpName = node.inputs[k + 2] || undefined;
  const scaleT = init.get(scaleName);
  const zpT = zpName ? init.get(zpName) : undefined;
  if (!scaleT) throw new Error(`ONNX tap: scale "${scaleName}" of the quantised tap is not an initializer`);
  const scale = tensorScalar(scaleT);
  const zeroPoint = zpT ? tensorScalar(zpT) : 0;
  if (scale === undefined || zeroPoint === undefined)
    throw new Error('ONNX tap: per-channel quantised taps are not supported (scale/zero point must be scalars)');
  const elemType = zpT ? zpT.dataType : OnnxDataType.UINT8;
  return { scale, zeroPoint, elemType, scaleName, zeroPointName: zpName };
}

/** Rewrites a model so that its outputs are the tap (float, plus raw when quantised). */
export function insertTap(modelBytes: Uint8Array, opts: TapOptions): TappedModel {
  const model = decodeModel(modelBytes);
  const g = applyGraphEdits(model.graph, opts);
  const loc = locateTap(g, opts.tap);
  const names = new Set<string>();
  for (const n of g.nodes) for (const t of [...n.inputs, ...n.outputs]) names.add(t);
  for (const t of g.initializers) names.add(t.name);
  for (const i of g.inputs) names.add(i.name);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 2; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return name;
  };
  const tapInfo = g.valueInfo.find((v) => v.name === loc.tensor) ?? g.outputs.find((v) => v.name === loc.tensor);
  const rank4 = tapInfo?.shape?.length === 4 || opts.nhwc;
  const nhwcShape = (s: OnnxDim[] | undefined): OnnxDim[] | undefined =>
    s && s.length === 4 ? [s[0], s[2], s[3], s[1]] : undefined;

  const newNodes: OnnxNode[] = [];
  const newOutputs = opts.keepOriginalOutputs ? [...g.outputs] : [];
  let floatOut = loc.tensor;
  let rawOut: string | undefined;
  if (loc.quantization) {
    const q = loc.quantization;
    floatOut = fresh(`${loc.tensor}__tap_float`);
    const inputs = [loc.tensor, q.scaleName, ...(q.zeroPointName ? [q.zeroPointName] : [])];
    newNodes.push(makeNode('DequantizeLinear', inputs, [floatOut], { name: fresh('tap_dequantize') }));
    rawOut = loc.tensor;
  }
  const transposeOut = (src: string): string => {
    const dst = fresh(`${src}__nhwc`);
    newNodes.push(
      makeNode('Transpose', [src], [dst], {
        name: fresh('tap_to_nhwc'),
        attributes: [makeAttribute('perm', [0, 2, 3, 1])],
      }),
    );
    return dst;
  };
  if (opts.nhwc && rank4) {
    floatOut = transposeOut(floatOut);
    if (rawOut) rawOut = transposeOut(rawOut);
  }
  const shape = opts.nhwc ? nhwcShape(tapInfo?.shape) : tapInfo?.shape;
  newOutputs.push(makeValueInfo(floatOut, OnnxDataType.FLOAT, shape));
  if (rawOut && loc.quantization) newOutputs.push(makeValueInfo(rawOut, loc.quantization.elemType, shape));

  let inputName = g.inputs.find((i) => !g.initializers.some((t) => t.name === i.name))?.name;
  if (!inputName) throw new Error('ONNX tap: the graph has no runtime input');
  let inputs = g.inputs;
  if (opts.nhwc) {
    // The NHWC input feeds a Transpose that produces the original NCHW input tensor.
    const orig = g.inputs.find((i) => i.name === inputName)!;
    const nhwcIn = fresh(`${inputName}__nhwc`);
    newNodes.unshift(
      makeNode('Transpose', [nhwcIn], [inputName], {
        name: fresh('input_to_nchw'),
        attributes: [makeAttribute('perm', [0, 3, 1, 2])],
      }),
    );
    inputs = g.inputs.map((i) =>
      i === orig ? makeValueInfo(nhwcIn, orig.elemType ?? OnnxDataType.FLOAT, nhwcShape(orig.shape)) : i,
    );
    inputName = nhwcIn;
  }

  // Input transpose first, the original nodes, then the tap nodes: keeps topological order.
  const inputNodes = opts.nhwc ? [newNodes[0]] : [];
  const tapNodes = opts.nhwc ? newNodes.slice(1) : newNodes;
  const edited: OnnxGraph = { ...g, inputs, nodes: [...inputNodes, ...g.nodes, ...tapNodes], outputs: newOutputs };
  const pruned = pruneGraph(edited);
  return {
    bytes: encodeModel({ ...model, graph: pruned }),
    tensor: loc.tensor,
    input: inputName,
    floatOutput: floatOut,
    rawOutput: rawOut,
    quantization: loc.quantization,
  };
}

/** Drops nodes, initializers and value infos that no graph output depends on. */
export function pruneGraph(g: OnnxGraph): OnnxGraph {
  const needed = new Set(g.outputs.map((o) => o.name));
  const keep: boolean[] = new Array(g.nodes.length).fill(false);
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (!n.outputs.some((o) => needed.has(o))) continue;
    keep[i] = true;
    for (const t of n.inputs) if (t) needed.add(t);
  }
  const nodes = g.nodes.filter((_, i) => keep[i]);
  const live = new Set<string>(needed);
  for (const n of nodes) for (const t of n.outputs) live.add(t);
  const initNames = new Set(g.initializers.map((t) => t.name));
  return {
    ...g,
    nodes,
    // Old IR versions list initializers among the inputs: drop those whose initializer goes.
    inputs: g.inputs.filter((i) => !initNames.has(i.name) || needed.has(i.name)),
    initializers: g.initializers.filter((t) => needed.has(t.name)),
    valueInfo: g.valueInfo.filter((v) => live.has(v.name) && !g.outputs.some((o) => o.name === v.name)),
  };
}

/** How a quantised (QOperator) backbone computes: as published, or on float kernels with its int8 weights. */
export type OnnxCompute = 'int8' | 'float';

/**
 * The tapped model run on float kernels ('float'): the same int8 weights (folded
 * to float at session creation), activations no longer rounded to 8 bits. On
 * WebAssembly, which has no int8 dot-product instructions, this is the faster
 * form of the network (trainer/bench/export-web.ts). The tap becomes a plain
 * float output; there is no raw quantised output.
 */
export function tapForCompute(t: TappedModel, compute: OnnxCompute): TappedModel {
  if (compute === 'int8' || !t.quantization) return t;
  const model = decodeModel(t.bytes);
  model.graph.outputs = model.graph.outputs.filter((o) => o.name !== t.rawOutput);
  return {
    bytes: floatCompute(encodeModel(model), { weights: 'int8' }),
    tensor: t.tensor,
    input: t.input,
    floatOutput: t.floatOutput,
    grid: t.quantization,
  };
}

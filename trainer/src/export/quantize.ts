/**
 * The int8 variants of an exported ProtoPNet (export-onnx.ts), and the graph
 * rewrite that makes int8 models fast in onnxruntime-web (wasm). Measurements
 * behind the choices: trainer/bench/export-web.ts.
 *
 * - quantizeStatic: float Conv nodes (tfjs backbones, the head's add-on layers)
 *   get int8 weights (symmetric, per output channel or per tensor), int32 biases
 *   and uint8 activations whose ranges come from calibration (calibrate.ts), as
 *   'qoperator' (QLinearConv, what the ONNX model zoo ships) or 'qdq'
 *   (QuantizeLinear/DequantizeLinear around float Conv, fused into QLinearConv by
 *   onnxruntime at level 'extended'). A Relu that is a Conv's only reader folds
 *   into the Conv's output range. The prototype layer stays float: the log
 *   similarity log((d+1)/(d+ε)) is steep near d = 0.
 * - quantizeWeightsOnly: int8 weights (Cast → Mul scale, folded at load), float compute
 *   and activations (for layers whose activations must not be rounded).
 * - rewriteForWasm: the wasm build of onnxruntime (MLAS, 128-bit SIMD) has no
 *   vectorised int8 depthwise kernel: a depthwise QLinearConv runs a scalar
 *   loop (~30 of the ~55 ms of MobileNetV2-int8 at batch 1), while float
 *   depthwise (im2col + SGEMM) takes ~10 ms. The rewrite replaces a QLinearConv
 *   by the same integer arithmetic in float (qconv-in-float.ts):
 *
 *     Cast(x_q) [- x_zp] → Conv(Cast(w_q - w_zp), Cast(bias_int32)) → Mul(x_s·w_s/y_s, ·) → QuantizeLinear(1, y_zp)
 *
 *   Integer operands and accumulators below 2^24 are exact in float32 whatever
 *   the summation order or kernel, and the multiplier is the float32 number
 *   QLinearConv requantises with, so the uint8 outputs are the same (applied
 *   only where the largest possible accumulator stays below 2^24). Two
 *   onnxruntime passes must not see through it: WeightBiasQuantization turns
 *   DequantizeLinear → Conv(float weights) → QuantizeLinear back into a
 *   (per-tensor) QLinearConv, hence Cast rather than DequantizeLinear; and
 *   ConvMulFusion folds Conv → Mul(x, constant) into the weights (no longer
 *   integers), hence the multiplier as the Mul's first input.
 */
import {
  OnnxDataType,
  decodeModel,
  encodeModel,
  makeAttribute,
  makeNode,
  opsetImports,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from '../onnx/onnx-proto.ts';
import { Editor, at, intAttribute, isStd, type TensorRange } from '../onnx/graph-editor.ts';

import { emitExactQConv, planExactQConv } from './qconv-in-float.ts';

export { intAttribute, intsAttribute, type TensorRange } from '../onnx/graph-editor.ts';

// ---- 2. exact float emulation of QLinearConv (for wasm) ---------------------------

export type QConvKind = 'depthwise' | 'pointwise' | 'spatial';

/** depthwise: group > 1; pointwise: 1x1 kernel; spatial: any other kernel. */
export function qconvKind(n: OnnxNode, weightDims: number[]): QConvKind {
  if ((intAttribute(n, 'group') ?? 1) > 1) return 'depthwise';
  return weightDims.slice(2).every((d) => d === 1) ? 'pointwise' : 'spatial';
}

export interface WasmRewriteOptions {
  /** Which QLinearConv kinds to emulate in float. Default ['depthwise'] (the only kind the wasm build runs slower in int8; see bench/export-web.ts). */
  kinds?: QConvKind[];
}

export interface WasmRewriteResult {
  bytes: Uint8Array;
  /** QLinearConv nodes rewritten, by kind. */
  rewritten: Record<QConvKind, number>;
  /** QLinearConv nodes left alone because their accumulators could exceed 2^24 (not exact in float). */
  skipped: string[];
}

/**
 * Replaces QLinearConv nodes by exact float emulations (see the file comment).
 * Every other node, and every tensor name and type, stays as it was.
 */
export function rewriteForWasm(bytes: Uint8Array, opts: WasmRewriteOptions = {}): WasmRewriteResult {
  const kinds = new Set(opts.kinds ?? ['depthwise']);
  const model = decodeModel(bytes);
  const e = new Editor(model);
  const rewritten: Record<QConvKind, number> = { depthwise: 0, pointwise: 0, spatial: 0 };
  const skipped: string[] = [];
  for (const n of model.graph.nodes) {
    const w = n.opType === 'QLinearConv' && isStd(n) ? e.init.get(n.inputs[3]) : undefined;
    const kind = w ? qconvKind(n, w.dims) : undefined;
    if (
      !w ||
      !kind ||
      !kinds.has(kind) ||
      !e.init.has(n.inputs[1]) ||
      !e.init.has(n.inputs[4]) ||
      !e.init.has(n.inputs[6])
    ) {
      e.nodes.push(n);
      continue;
    }
    if (!emulateQLinearConv(e, n, w)) {
      skipped.push(n.name || n.outputs[0]);
      e.nodes.push(n);
      continue;
    }
    rewritten[kind]++;
  }
  return { bytes: encodeModel(e.finish(model)), rewritten, skipped };
}

function emulateQLinearConv(e: Editor, n: OnnxNode, weight: OnnxTensor): boolean {
  const [x, xs, xzp, , ws, wzp, ys, yzp] = n.inputs;
  const xq = e.qparams(xs, xzp);
  const plan = planExactQConv(e, n, weight, xq, e.qparams(ws, wzp), e.qparams(ys, yzp));
  if (typeof plan === 'string') return false;
  let xf = e.fresh(`${x}_int`);
  e.node('Cast', [x], [xf], [makeAttribute('to', OnnxDataType.FLOAT)]);
  if (xq.zeroPoint[0] !== 0) {
    // Padding then adds (x_zp - x_zp) = 0, as QLinearConv pads with the zero point.
    const centred = e.fresh(`${x}_centred`);
    e.node('Sub', [xf, e.float(`${x}_zero_point_float`, [], [xq.zeroPoint[0]])], [centred]);
    xf = centred;
  }
  const scaled = emitExactQConv(e, n, weight, plan, xf);
  e.node(
    'QuantizeLinear',
    [scaled, e.float(`${n.outputs[0]}_unit_scale`, [], [1]), ...(yzp ? [yzp] : [])],
    [n.outputs[0]],
  );
  return true;
}

// ---- 1. static quantisation -------------------------------------------------------------

export type QuantFormat = 'qoperator' | 'qdq';
export type WeightGranularity = 'per-channel' | 'per-tensor';

export interface StaticQuantOptions {
  /** Default 'qoperator'. */
  format?: QuantFormat;
  /** Default 'per-channel'. */
  weights?: WeightGranularity;
  /**
   * Which float Conv nodes to quantise. Default: every Conv with initializer
   * weights except the prototype layer (weights named *prototypes*).
   */
  include?: (node: OnnxNode) => boolean;
}

/** The default selection: keep the prototype distances (Conv with the prototypes) in float. */
export const defaultQuantInclude = (n: OnnxNode): boolean => !n.inputs[1].includes('prototypes');

interface ConvUnit {
  conv: OnnxNode;
  /** Node whose output is the unit's quantised output (the Conv, or the Relu folded into it). */
  last: OnnxNode;
  input: string;
  output: string;
}

function convUnits(model: OnnxModel, include: (n: OnnxNode) => boolean): ConvUnit[] {
  const g = model.graph;
  const init = new Set(g.initializers.map((t) => t.name));
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const readers = new Map<string, OnnxNode[]>();
  for (const n of g.nodes) for (const t of n.inputs) readers.set(t, [...(readers.get(t) ?? []), n]);
  const units: ConvUnit[] = [];
  for (const n of g.nodes) {
    if (
      !isStd(n) ||
      n.opType !== 'Conv' ||
      !init.has(n.inputs[1]) ||
      (n.inputs[2] && !init.has(n.inputs[2])) ||
      init.has(n.inputs[0]) ||
      !include(n)
    )
      continue;
    const r = readers.get(n.outputs[0]) ?? [];
    const relu =
      r.length === 1 && isStd(r[0]) && r[0].opType === 'Relu' && !graphOutputs.has(n.outputs[0]) ? r[0] : undefined;
    const last = relu ?? n;
    units.push({ conv: n, last, input: n.inputs[0], output: last.outputs[0] });
  }
  return units;
}

/** Tensors whose ranges quantizeStatic needs (inputs and outputs of the quantised Conv units). */
export function quantizationTargets(bytes: Uint8Array, opts: Pick<StaticQuantOptions, 'include'> = {}): string[] {
  const units = convUnits(decodeModel(bytes), opts.include ?? defaultQuantInclude);
  return [...new Set(units.flatMap((u) => [u.input, u.output]))];
}

/** uint8 asymmetric parameters covering [min, max] and 0. */
export function activationParams(r: TensorRange): { scale: number; zeroPoint: number } {
  const lo = Math.min(r.min, 0);
  const hi = Math.max(r.max, 0);
  if (!(hi > lo)) return { scale: 1, zeroPoint: 0 };
  const scale = Math.fround((hi - lo) / 255);
  return { scale, zeroPoint: Math.min(255, Math.max(0, Math.round(-lo / scale))) };
}

/** Symmetric int8 weights ([-127, 127]) of a [Cout, ...] kernel, one scale per output channel or one for all. */
export function quantizeWeights(
  w: ArrayLike<number>,
  cout: number,
  granularity: WeightGranularity,
): { q: Int8Array; scale: number[] } {
  const per = w.length / cout;
  const absMax = new Array<number>(cout).fill(0);
  for (let c = 0; c < cout; c++)
    for (let k = 0; k < per; k++) absMax[c] = Math.max(absMax[c], Math.abs(w[c * per + k]));
  const all = Math.max(...absMax);
  const scale = (granularity === 'per-channel' ? absMax : [all]).map((m) => Math.fround(m > 0 ? m / 127 : 1));
  const q = new Int8Array(w.length);
  for (let c = 0; c < cout; c++) {
    const s = at(scale, c);
    for (let k = 0; k < per; k++) q[c * per + k] = Math.max(-127, Math.min(127, Math.round(w[c * per + k] / s)));
  }
  return { q, scale };
}

export interface StaticQuantResult {
  bytes: Uint8Array;
  /** Conv nodes quantised (names or first outputs). */
  quantized: string[];
  /** Relu nodes folded into a Conv's output range. */
  foldedRelu: number;
}

/**
 * Static int8 quantisation of the selected Conv nodes with the calibrated
 * `ranges` (calibrate.ts; tensor names from quantizationTargets). Tensors keep
 * their names and float types where float readers remain.
 */
export function quantizeStatic(
  bytes: Uint8Array,
  ranges: ReadonlyMap<string, TensorRange>,
  opts: StaticQuantOptions = {},
): StaticQuantResult {
  const format = opts.format ?? 'qoperator';
  const granularity = opts.weights ?? 'per-channel';
  const model = decodeModel(bytes);
  const opset = opsetImports(model).get('') ?? 0;
  if (opset < 13 && granularity === 'per-channel' && format === 'qdq')
    throw new Error(`quantize: per-channel DequantizeLinear needs opset 13, the model has ${opset}`);
  const units = convUnits(model, opts.include ?? defaultQuantInclude);
  const byConv = new Map(units.map((u) => [u.conv, u]));
  const folded = new Set(units.filter((u) => u.last !== u.conv).map((u) => u.last));
  const e = new Editor(model);

  const actParams = new Map<
    string,
    { scale: string; zeroPoint: string; value: { scale: number; zeroPoint: number } }
  >();
  const params = (t: string): { scale: string; zeroPoint: string; value: { scale: number; zeroPoint: number } } => {
    let p = actParams.get(t);
    if (!p) {
      const r = ranges.get(t);
      if (!r)
        throw new Error(`quantize: no calibrated range for tensor "${t}" (calibrate quantizationTargets(model) first)`);
      const v = activationParams(r);
      p = {
        scale: e.float(`${t}_scale`, [], [v.scale]),
        zeroPoint: e.tensor(`${t}_zero_point`, OnnxDataType.UINT8, [], [v.zeroPoint]),
        value: v,
      };
      actParams.set(t, p);
    }
    return p;
  };
  /** Float tensor → its uint8 twin (a QuantizeLinear, or a QLinearConv output). */
  const quantOf = new Map<string, string>();
  const quantized = (t: string): string => {
    let q = quantOf.get(t);
    if (!q) {
      const p = params(t);
      q = e.fresh(`${t}_quantized`);
      e.node('QuantizeLinear', [t, p.scale, p.zeroPoint], [q]);
      quantOf.set(t, q);
    }
    return q;
  };
  /** In QDQ form every quantised tensor is read through one DequantizeLinear. */
  const dqOf = new Map<string, string>();
  const dequantized = (t: string): string => {
    let d = dqOf.get(t);
    if (!d) {
      const p = params(t);
      d = e.fresh(`${t}_dequantized`);
      e.node('DequantizeLinear', [quantized(t), p.scale, p.zeroPoint], [d]);
      dqOf.set(t, d);
    }
    return d;
  };

  const names: string[] = [];
  for (const n of model.graph.nodes) {
    if (folded.has(n)) continue; // emitted with its Conv
    const u = byConv.get(n);
    if (!u) {
      e.nodes.push(n);
      continue;
    }
    const [, w, b] = n.inputs;
    const weight = e.init.get(w)!;
    const cout = weight.dims[0];
    const wq = quantizeWeights(e.values(w), cout, granularity);
    const xp = params(u.input);
    const yp = params(u.output);
    const perAxis = wq.scale.length > 1 ? [makeAttribute('axis', 0)] : [];
    const wQ = e.tensor(`${w}_quantized`, OnnxDataType.INT8, weight.dims, wq.q);
    const wS = e.float(`${w}_scale`, [wq.scale.length], wq.scale);
    const wZ = e.tensor(`${w}_zero_point`, OnnxDataType.INT8, [wq.scale.length], new Array(wq.scale.length).fill(0));
    const bScale = Array.from({ length: cout }, (_, c) => Math.fround(xp.value.scale * at(wq.scale, c)));
    const bQ = b
      ? e.tensor(
          `${b}_quantized`,
          OnnxDataType.INT32,
          [cout],
          e.values(b).map((v, c) => Math.round(v / bScale[c])),
        )
      : undefined;
    names.push(n.name || n.outputs[0]);
    if (format === 'qoperator') {
      const yq = e.fresh(`${u.output}_quantized`);
      e.nodes.push(
        makeNode(
          'QLinearConv',
          [quantized(u.input), xp.scale, xp.zeroPoint, wQ, wS, wZ, yp.scale, yp.zeroPoint, ...(bQ ? [bQ] : [])],
          [yq],
          {
            name: n.name || e.fresh(`${yq}_conv`),
            attributes: n.attributes,
          },
        ),
      );
      quantOf.set(u.output, yq);
      // Float readers (and graph outputs) keep the original name.
      e.node('DequantizeLinear', [yq, yp.scale, yp.zeroPoint], [u.output]);
    } else {
      const wD = e.fresh(`${w}_dequantized`);
      e.node('DequantizeLinear', [wQ, wS, wZ], [wD], perAxis);
      const inputs = [dequantized(u.input), wD];
      if (bQ) {
        const bD = e.fresh(`${b}_dequantized`);
        e.node('DequantizeLinear', [bQ, e.float(`${b}_scale`, [cout], bScale)], [bD], perAxis);
        inputs.push(bD);
      }
      const y = e.fresh(`${n.outputs[0]}_float`);
      e.nodes.push(
        makeNode('Conv', inputs, [u.last === n ? y : n.outputs[0]], {
          name: n.name || e.fresh(`${y}_conv`),
          attributes: n.attributes,
        }),
      );
      if (u.last !== n) e.nodes.push({ ...u.last, outputs: [y] });
      const p = yp;
      const q = e.fresh(`${u.output}_quantized`);
      e.node('QuantizeLinear', [y, p.scale, p.zeroPoint], [q]);
      quantOf.set(u.output, q);
      e.node('DequantizeLinear', [q, p.scale, p.zeroPoint], [u.output]);
      dqOf.set(u.output, u.output);
    }
  }
  const out = e.finish(model);
  // Topological order: QuantizeLinear nodes are emitted when first read, after their producers.
  return { bytes: encodeModel(out), quantized: names, foldedRelu: folded.size };
}

// ---- weight-only int8 ------------------------------------------------------------------

export interface WeightOnlyOptions {
  /** Default 'per-channel' (output channels: Conv axis 0, MatMul weight [K, N] axis 1). */
  weights?: WeightGranularity;
  /** Which Conv / MatMul nodes (with initializer weights) to store in int8. Default: the same as defaultQuantInclude, Conv only. */
  include?: (node: OnnxNode) => boolean;
}

/**
 * Stores the selected float weights as int8 (symmetric, per output channel) read
 * through DequantizeLinear; compute stays float and activations are untouched.
 * A smaller file for layers whose activations must not be rounded (the head).
 */
export function quantizeWeightsOnly(bytes: Uint8Array, opts: WeightOnlyOptions = {}): StaticQuantResult {
  const granularity = opts.weights ?? 'per-channel';
  const include = opts.include ?? ((n: OnnxNode) => n.opType === 'Conv' && defaultQuantInclude(n));
  const model = decodeModel(bytes);
  const e = new Editor(model);
  const names: string[] = [];
  for (const n of model.graph.nodes) {
    const weightInput = n.opType === 'Conv' ? 1 : n.opType === 'MatMul' ? 1 : -1;
    const weight = weightInput >= 0 && isStd(n) ? e.init.get(n.inputs[weightInput]) : undefined;
    if (
      !weight ||
      weight.dataType !== OnnxDataType.FLOAT ||
      !include(n) ||
      (n.opType === 'MatMul' && weight.dims.length !== 2)
    ) {
      e.nodes.push(n);
      continue;
    }
    const w = e.values(n.inputs[weightInput]);
    // MatMul [K, N]: output channels are columns; quantise the transpose, store in [K, N] order.
    const isMatMul = n.opType === 'MatMul';
    const cout = isMatMul ? weight.dims[1] : weight.dims[0];
    const k = w.length / cout;
    const rows = isMatMul ? Array.from({ length: w.length }, (_, i) => w[(i % k) * cout + Math.floor(i / k)]) : w;
    const q = quantizeWeights(rows, cout, granularity);
    const stored = isMatMul
      ? Int8Array.from({ length: w.length }, (_, i) => q.q[(i % cout) * k + Math.floor(i / cout)])
      : q.q;
    const quantizedName = e.tensor(`${n.inputs[weightInput]}_int8`, OnnxDataType.INT8, weight.dims, stored);
    const dequantized = e.dequantizedConstant(
      quantizedName,
      weight.dims,
      q.scale,
      q.scale.map(() => 0),
      isMatMul ? 1 : 0,
    );
    e.nodes.push({ ...n, inputs: n.inputs.map((t, i) => (i === weightInput ? dequantized : t)) });
    names.push(n.name || n.outputs[0]);
  }
  return { bytes: encodeModel(e.finish(model)), quantized: names, foldedRelu: 0 };
}

// ---- inspection -------------------------------------------------------------------------

export interface ModelSummary {
  bytes: number;
  /** Node counts by (domain:)op type. */
  ops: Record<string, number>;
  /** Initializer payload bytes by element type name. */
  weightBytes: Record<string, number>;
}

const TYPE_NAMES: Record<number, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64' };
const TYPE_SIZE: Record<number, number> = { 1: 4, 2: 1, 3: 1, 6: 4, 7: 8 };

export function summarizeModel(bytes: Uint8Array): ModelSummary {
  const m = decodeModel(bytes);
  const ops: Record<string, number> = {};
  for (const n of m.graph.nodes) {
    const k = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}:${n.opType}` : n.opType;
    ops[k] = (ops[k] ?? 0) + 1;
  }
  const weightBytes: Record<string, number> = {};
  for (const t of m.graph.initializers) {
    const k = TYPE_NAMES[t.dataType] ?? `type${t.dataType}`;
    weightBytes[k] = (weightBytes[k] ?? 0) + t.dims.reduce((a, d) => a * d, 1) * (TYPE_SIZE[t.dataType] ?? 0);
  }
  return { bytes: bytes.length, ops, weightBytes };
}

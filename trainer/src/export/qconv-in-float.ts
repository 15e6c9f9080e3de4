/**
 * One QLinearConv computed exactly on float kernels: the centred integer input
 * (x_q - x_zp) convolved with the centred integer weights (w_q - w_zp, stored
 * int8 and Cast at load) and the int32 bias, then scaled by onnxruntime's
 * requantisation multiplier. Integer operands and accumulators below 2^24 are
 * exact in float32 whatever the summation order or kernel, so rounding the
 * result gives QLinearConv's output. The one implementation behind the deployed
 * wasm rewrite (quantize.ts, rewriteForWasm) and the whole-graph emulation that
 * is only measured (trainer/bench/int8-in-float.ts).
 */
import { OnnxDataType, makeAttribute, makeNode, type OnnxNode, type OnnxTensor } from '../onnx/onnx-proto.ts';
import { at, centredRange, inexactChannel, type Editor, type QParams } from '../onnx/graph-editor.ts';

/** What the emulation of one QLinearConv needs, once it is known to be exact. */
export interface ExactQConv {
  /** Centred integer weights w_q - w_zp, [Cout, ...] as the node's weights. */
  weights: Float32Array;
  /** x_scale * w_scale[c] / y_scale per output channel, in float32 as onnxruntime computes it. */
  multiplier: number[];
}

/**
 * The exact emulation of QLinearConv `n` (weights `wt`, an initializer), or why
 * there is none: per-channel activation parameters, an accumulator that could
 * pass 2^24, or centred weights outside int8.
 */
export function planExactQConv(
  e: Editor,
  n: OnnxNode,
  weight: OnnxTensor,
  xq: QParams,
  wq: QParams,
  yq: QParams,
): ExactQConv | string {
  const [, , , w, , , , , b] = n.inputs;
  const out = n.outputs[0];
  if (xq.scale.length !== 1 || yq.scale.length !== 1) return `${out}: per-channel activation parameters`;
  const cout = weight.dims[0];
  const per = weight.dims.slice(1).reduce((a, c) => a * c, 1);
  const weightValues = e.values(w);
  const inexact = inexactChannel(weightValues, wq.zeroPoint, b ? e.values(b) : undefined, cout, centredRange(xq));
  if (inexact >= 0) return `${out}: output channel ${inexact} could accumulate past 2^24, not exact in float32`;
  const weights = new Float32Array(weightValues.length);
  for (let c = 0; c < cout; c++)
    for (let k = 0; k < per; k++) weights[c * per + k] = weightValues[c * per + k] - at(wq.zeroPoint, c);
  if (weights.some((v) => v < -128 || v > 127)) return `${out}: centred weights leave the int8 range`;
  const f = Math.fround;
  const multiplier = Array.from({ length: cout }, (_, c) => f(f(xq.scale[0] * at(wq.scale, c)) / yq.scale[0]));
  return { weights, multiplier };
}

/**
 * Emits Conv(x, Cast(centred weights), Cast(bias)) scaled by the multiplier,
 * reading the float tensor `x` of centred input integers; returns the name of
 * the scaled accumulator (QLinearConv's output before rounding and clipping).
 */
export function emitExactQConv(e: Editor, n: OnnxNode, weight: OnnxTensor, plan: ExactQConv, x: string): string {
  const [, , , w, , , , , b] = n.inputs;
  const out = n.outputs[0];
  // Integer weights and biases stay int8 / int32 in the file; the Casts are constant-folded at session creation.
  const wf = e.fresh(`${w}_int_float`);
  e.node(
    'Cast',
    [e.tensor(`${w}_int`, OnnxDataType.INT8, weight.dims, plan.weights)],
    [wf],
    [makeAttribute('to', OnnxDataType.FLOAT)],
  );
  const inputs = [x, wf];
  if (b) {
    const bf = e.fresh(`${b}_int_float`);
    e.node('Cast', [b], [bf], [makeAttribute('to', OnnxDataType.FLOAT)]);
    inputs.push(bf);
  }
  const acc = e.fresh(`${out}_acc`);
  e.nodes.push(makeNode('Conv', inputs, [acc], { name: n.name || e.fresh(`${acc}_conv`), attributes: n.attributes }));
  // Multiplier first: onnxruntime's ConvMulFusion folds Conv → Mul(x, constant) into the Conv weights, which
  // makes the accumulators non-integer and the rounding no longer QLinearConv's; it only matches the
  // constant as the Mul's second input.
  const scaled = e.fresh(`${out}_requantized`);
  const cout = weight.dims[0];
  e.node(
    'Mul',
    [e.float(`${out}_multiplier`, [1, cout, ...weight.dims.slice(2).map(() => 1)], plan.multiplier), acc],
    [scaled],
  );
  return scaled;
}

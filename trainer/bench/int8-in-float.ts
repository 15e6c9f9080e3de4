/**
 * An int8 QOperator graph (QuantizeLinear / QLinearConv / QLinearAdd /
 * DequantizeLinear) run on float kernels with the int8 model's numbers, for
 * onnxruntime-web: its wasm build has 128-bit SIMD without int8 dot products
 * (about 8 multiply-adds per instruction against AVX-512 VNNI's 64), so its
 * int8 convolutions are slower than its float ones, and mixing them with float
 * ops costs layout transposes. Measured in export-web.ts; not deployed (the
 * shipped model emulates only its depthwise convs, src/export/quantize.ts).
 *
 * Every uint8 tensor q (scale s, zero point z) is carried as the float tensor
 * of its centred integers c = q - z, exactly representable. Then
 *
 *   QuantizeLinear(x)   c = Clip(Round(x / s), -z, 255 - z)
 *   QLinearConv         c_y = Round(Clip(m * Conv(c_x, w - w_z, b), lo, hi))
 *                       m = x_s * w_s / y_s per output channel in float32 (the multiplier
 *                       onnxruntime requantises with); the Conv sums integers, exact in
 *                       float32 below 2^24 (checked per layer, worst case)
 *   QLinearAdd          c = Round(Clip(c_a * a_s / c_s + c_b * b_s / c_s, lo, hi))
 *   DequantizeLinear    x = c * s
 *
 * Round commutes with a Clip to integer bounds, so the Clip sits next to the Conv
 * where it is cheapest. Padding a centred tensor with 0 pads with the zero point,
 * as QLinearConv does. Rounding is half to even in both, so every uint8 value is
 * the int8 model's. (Folding m into the weights saves the Mul but sums rounded
 * products: a few outputs in a million then move by one step, and MobileNetV2's
 * last blocks amplify that to tens of steps.)
 *
 * Each QLinearConv is the deployed exact emulation (src/export/qconv-in-float.ts):
 * centred weights stored int8 and biases int32, Cast at session creation (Cast,
 * not DequantizeLinear, which onnxruntime's constant folding leaves alone).
 */
import { decodeModel, encodeModel } from '../src/onnx/onnx-proto.ts';
import { Editor, centredRange, isStd, type QParams } from '../src/onnx/graph-editor.ts';
import { emitExactQConv, planExactQConv } from '../src/export/qconv-in-float.ts';

export interface Int8InFloatResult {
  bytes: Uint8Array;
  /** Quantised ops converted, by op type. */
  converted: Record<string, number>;
}

/** Thrown when the graph has a quantised op this pass cannot carry in float; the caller keeps the int8 graph. */
export class Int8InFloatError extends Error {}

const f = Math.fround;

/** The float-kernel form of a QOperator graph (see the file comment). */
export function int8InFloat(bytes: Uint8Array): Int8InFloatResult {
  const model = decodeModel(bytes);
  const e = new Editor(model);
  /** uint8/int8 tensor → its centred float stand-in and parameters. */
  const centred = new Map<string, { name: string; q: QParams }>();
  const converted: Record<string, number> = {};
  const count = (op: string): void => void (converted[op] = (converted[op] ?? 0) + 1);
  const scalarParams = (scale: string, zp: string | undefined, what: string): QParams => {
    const q = e.qparams(scale, zp);
    if (q.scale.length !== 1 || q.zeroPoint.length !== 1)
      throw new Int8InFloatError(`${what}: per-channel activation parameters are not supported`);
    return q;
  };
  const input = (x: string, reader: string): { name: string; q: QParams } => {
    const c = centred.get(x);
    if (!c)
      throw new Int8InFloatError(`${reader} reads ${x}, which is not produced by a quantised op this pass converts`);
    return c;
  };
  /** Clip to the output's integer range, then Round (the order onnxruntime can fuse). */
  const requantized = (y: string, value: string, q: QParams): void => {
    const [lo, hi] = centredRange(q);
    const clipped = e.fresh(`${y}_clipped`);
    e.node('Clip', [value, e.float(`${y}_lo`, [], [lo]), e.float(`${y}_hi`, [], [hi])], [clipped]);
    const rounded = e.fresh(`${y}_centred`);
    e.node('Round', [clipped], [rounded]);
    centred.set(y, { name: rounded, q });
  };
  const quantizedInputs = new Set<string>();

  for (const n of model.graph.nodes) {
    const op = isStd(n) ? n.opType : `${n.domain}:${n.opType}`;
    if (op === 'QuantizeLinear' && !e.init.has(n.inputs[0])) {
      const [x, s, z] = n.inputs;
      const q = scalarParams(s, z, n.outputs[0]);
      const div = e.fresh(`${n.outputs[0]}_scaled`);
      e.node('Div', [x, e.float(`${n.outputs[0]}_scale`, [], [q.scale[0]])], [div]);
      const [lo, hi] = centredRange(q);
      const rounded = e.fresh(`${n.outputs[0]}_rounded`);
      e.node('Round', [div], [rounded]);
      const c = e.fresh(`${n.outputs[0]}_centred`);
      e.node('Clip', [rounded, e.float(`${n.outputs[0]}_lo`, [], [lo]), e.float(`${n.outputs[0]}_hi`, [], [hi])], [c]);
      centred.set(n.outputs[0], { name: c, q });
      count(op);
    } else if (op === 'QLinearConv') {
      const [x, xs, xzp, w, ws, wzp, ys, yzp, b] = n.inputs;
      const weight = e.init.get(w);
      if (!weight || (b && !e.init.has(b)))
        throw new Int8InFloatError(`${n.outputs[0]}: QLinearConv weights must be initializers`);
      const xin = input(x, n.outputs[0]);
      const yq = scalarParams(ys, yzp, n.outputs[0]);
      const plan = planExactQConv(e, n, weight, scalarParams(xs, xzp, n.outputs[0]), e.qparams(ws, wzp), yq);
      if (typeof plan === 'string') throw new Int8InFloatError(plan);
      requantized(n.outputs[0], emitExactQConv(e, n, weight, plan, xin.name), yq);
      count(op);
    } else if (op === 'com.microsoft:QLinearAdd') {
      const [a, as, az, b2, bs, bz, cs, cz] = n.inputs;
      const ain = input(a, n.outputs[0]);
      const bin = input(b2, n.outputs[0]);
      const aq = scalarParams(as, az, n.outputs[0]);
      const bq = scalarParams(bs, bz, n.outputs[0]);
      const cq = scalarParams(cs, cz, n.outputs[0]);
      const scaled = (v: string, s: number, tag: string): string => {
        const out = e.fresh(`${n.outputs[0]}_${tag}`);
        e.node('Mul', [v, e.float(`${n.outputs[0]}_${tag}_ratio`, [], [f(s / cq.scale[0])])], [out]);
        return out;
      };
      const sum = e.fresh(`${n.outputs[0]}_sum`);
      e.node('Add', [scaled(ain.name, aq.scale[0], 'a'), scaled(bin.name, bq.scale[0], 'b')], [sum]);
      requantized(n.outputs[0], sum, cq);
      count(op);
    } else if (op === 'DequantizeLinear' && centred.has(n.inputs[0])) {
      const c = input(n.inputs[0], n.outputs[0]);
      const q = scalarParams(n.inputs[1], n.inputs[2], n.outputs[0]);
      e.node('Mul', [c.name, e.float(`${n.outputs[0]}_scale`, [], [q.scale[0]])], [n.outputs[0]]);
      count(op);
    } else {
      for (const t of n.inputs)
        if (centred.has(t))
          throw new Int8InFloatError(
            `${n.opType} (${n.outputs[0]}) reads the quantised tensor ${t}; it has no float form here`,
          );
      e.nodes.push(n);
    }
    for (const t of n.outputs) if (centred.has(t)) quantizedInputs.add(t);
  }
  for (const o of model.graph.outputs)
    if (centred.has(o.name)) throw new Int8InFloatError(`graph output ${o.name} is quantised`);
  return { bytes: encodeModel(e.finish(model, quantizedInputs)), converted };
}

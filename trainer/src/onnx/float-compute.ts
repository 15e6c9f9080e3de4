/**
 * QOperator → float compute: an int8 ONNX model (QuantizeLinear / QLinearConv /
 * QLinearAdd / DequantizeLinear) rewritten to run on float kernels, its int8
 * weights kept behind a Cast → Mul folded at load (or folded to float32), its
 * activations no longer rounded to 8 bits. The int8 ONNX backbones train and
 * ship in this form when their compute is 'float' (backbone/onnx-tap.ts); on a
 * model quantised from fp32 it is not the int8 model's numbers, so there it is
 * only measured (trainer/bench/export-web.ts).
 */
import { OnnxDataType, decodeModel, encodeModel, makeNode } from './onnx-proto.ts';
import { Editor, at, isStd, type QParams } from './graph-editor.ts';

export interface FloatComputeOptions {
  /** 'int8': weights stay int8 initialisers behind DequantizeLinear; 'float': folded to float32. Default 'int8'. */
  weights?: 'int8' | 'float';
  /** Clip converted outputs whose uint8 range starts at 0 (ReLU/ReLU6 folded into the range). Default true. */
  clipActivations?: boolean;
}

/**
 * Runs a QOperator model (QuantizeLinear / QLinearConv / QLinearAdd /
 * DequantizeLinear) in float: activations are no longer rounded to 8 bits.
 */
export function floatCompute(bytes: Uint8Array, opts: FloatComputeOptions = {}): Uint8Array {
  const model = decodeModel(bytes);
  const e = new Editor(model);
  const int8Weights = (opts.weights ?? 'int8') === 'int8';
  const clipActs = opts.clipActivations ?? true;
  /** Quantised tensor → the float tensor standing for it. */
  const floatOf = new Map<string, string>();
  const qOf = new Map<string, QParams>();
  const asFloat = (x: string): string => {
    const f = floatOf.get(x);
    if (f) return f;
    const q = qOf.get(x);
    if (!q) throw new Error(`quantize: no quantisation parameters known for ${x}`);
    const name = e.fresh(`${x}_float`);
    e.node('DequantizeLinear', [x, q.scaleName, ...(q.zeroPointName ? [q.zeroPointName] : [])], [name]);
    floatOf.set(x, name);
    return name;
  };
  const result = (y: string, value: string, q: QParams): void => {
    const lo = ((q.elemType === OnnxDataType.INT8 ? -128 : 0) - q.zeroPoint[0]) * q.scale[0];
    const hi = ((q.elemType === OnnxDataType.INT8 ? 127 : 255) - q.zeroPoint[0]) * q.scale[0];
    let v = value;
    if (clipActs && lo === 0) {
      v = e.fresh(`${y}_clipped`);
      e.node('Clip', [value, e.float(`${y}_min`, [], [lo]), e.float(`${y}_max`, [], [hi])], [v]);
    }
    floatOf.set(y, v);
    qOf.set(y, q);
  };
  const materialised = new Set<string>();
  /** A reader left untouched gets the uint8 tensor back (QuantizeLinear of its float stand-in) under its own name. */
  const asQuant = (x: string): string => {
    if (!convertedOutputs.has(x) || materialised.has(x)) return x;
    const q = qOf.get(x)!;
    e.node('QuantizeLinear', [floatOf.get(x)!, q.scaleName, ...(q.zeroPointName ? [q.zeroPointName] : [])], [x]);
    materialised.add(x);
    return x;
  };
  /** Quantised inputs made by nodes this pass leaves alone take the reader's own parameters. */
  const known = (x: string, q: QParams): void => {
    if (!floatOf.has(x) && !qOf.has(x)) qOf.set(x, q);
  };
  const convertedOutputs = new Set<string>();
  for (const n of model.graph.nodes) {
    if (isStd(n) && n.opType === 'QuantizeLinear' && !e.init.has(n.inputs[0])) {
      result(n.outputs[0], n.inputs[0], e.qparams(n.inputs[1], n.inputs[2]));
      convertedOutputs.add(n.outputs[0]);
    } else if (isStd(n) && n.opType === 'DequantizeLinear' && qOf.has(n.inputs[0])) {
      e.node('Identity', [asFloat(n.inputs[0])], [n.outputs[0]]);
    } else if (isStd(n) && n.opType === 'QLinearConv' && e.init.has(n.inputs[3])) {
      const [x, xs, xzp, w, ws, wzp, ys, yzp, b] = n.inputs;
      const weight = e.init.get(w)!;
      const xq = e.qparams(xs, xzp);
      const wq = e.qparams(ws, wzp);
      const cout = weight.dims[0];
      known(x, xq);
      let wName: string;
      if (int8Weights) {
        wName = e.dequantizedConstant(w, weight.dims, wq.scale, wq.zeroPoint, 0);
      } else {
        const per = weight.dims.slice(1).reduce((a, c) => a * c, 1);
        const weightValues = e.values(w);
        const floatWeights = new Float32Array(weightValues.length);
        for (let c = 0; c < cout; c++)
          for (let k = 0; k < per; k++)
            floatWeights[c * per + k] = (weightValues[c * per + k] - at(wq.zeroPoint, c)) * at(wq.scale, c);
        wName = e.float(`${w}_float`, weight.dims, floatWeights);
      }
      const inputs = [asFloat(x), wName];
      if (b)
        inputs.push(
          e.float(
            `${b}_float`,
            [cout],
            e.values(b).map((v, c) => v * xq.scale[0] * at(wq.scale, c)),
          ),
        );
      const conv = e.fresh(`${n.outputs[0]}_conv`);
      e.nodes.push(makeNode('Conv', inputs, [conv], { name: n.name || e.fresh('conv'), attributes: n.attributes }));
      result(n.outputs[0], conv, e.qparams(ys, yzp));
      convertedOutputs.add(n.outputs[0]);
    } else if (n.domain === 'com.microsoft' && n.opType === 'QLinearAdd') {
      const [a, aScale, aZero, b2, bScale, bZero, cs, czp] = n.inputs;
      known(a, e.qparams(aScale, aZero));
      known(b2, e.qparams(bScale, bZero));
      const sum = e.fresh(`${n.outputs[0]}_sum`);
      e.node('Add', [asFloat(a), asFloat(b2)], [sum]);
      result(n.outputs[0], sum, e.qparams(cs, czp));
      convertedOutputs.add(n.outputs[0]);
    } else {
      e.nodes.push({ ...n, inputs: n.inputs.map(asQuant) });
    }
  }
  for (const o of model.graph.outputs) asQuant(o.name);
  return encodeModel(e.finish(model, convertedOutputs));
}

/**
 * WIP: QOperator → mixed float/int8 conversion.
 */
import {
  OnnxDataType,
  attributeName,
  decodeModel,
  encodeModel,
  makeAttribute,
  makeNode,
  makeTensor,
  tensorValues,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from '../backbone/onnx-proto.ts';
import { decodeMessage, varintOf } from '../backbone/protobuf-wire.ts';

export type WeightStorage = 'float' | 'int8';

export type QOpKind = 'conv' | 'depthwise' | 'pointwise' | 'add' | 'input';

export interface DequantizeOptions {
  /** 'int8': weights stay int8 initialisers read through DequantizeLinear; 'float': folded to float32. Default 'int8'. */
  weights?: WeightStorage;
  /** Clip converted outputs to the range their uint8 tensor could hold: 'all', 'activations' (ranges starting at 0: ReLU/ReLU6), 'none'. Default 'all'. */
  clip?: 'all' | 'activations' | 'none';
  /** Which QLinear nodes become float. Default: all. */
  toFloat?: (kind: QOpKind, node: OnnxNode) => boolean;
}

export function dequantizeQOperator(bytes: Uint8Array, opts: DequantizeOptions = {}): Uint8Array {
  return encodeModel(dequantizeModel(decodeModel(bytes), opts));
}

interface Q {
  scale: number[];
  zeroPoint: number[];
  elemType: number;
  scaleName: string;
  zeroPointName?: string;
}

function intAttr(n: OnnxNode, name: string): number | undefined {
  for (const a of n.attributes) {
    if (attributeName(a) !== name) continue;
    const v = varintOf(decodeMessage(a), 3);
    return v === undefined ? undefined : Number(v);
  }
  return undefined;
}

export function dequantizeModel(model: OnnxModel, opts: DequantizeOptions = {}): OnnxModel {
  const weights = opts.weights ?? 'int8';
  const clipMode = opts.clip ?? 'all';
  const toFloat = opts.toFloat ?? (() => true);
  const g = model.graph;
  const init = new Map(g.initializers.map((t) => [t.name, t]));
  const used = new Set<string>();
  for (const n of g.nodes) for (const t of [...n.inputs, ...n.outputs]) used.add(t);
  for (const t of g.initializers) used.add(t.name);
  for (const v of [...g.inputs, ...g.outputs]) used.add(v.name);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 2; used.has(name); i++) name = `${base}_${i}`;
    used.add(name);
    return name;
  };
  const newInits: OnnxTensor[] = [];
  const values = (name: string): number[] => {
    const t = init.get(name);
    if (!t) throw new Error(`quantize: ${name} is not an initializer`);
    return tensorValues(t);
  };
  const qparams = (s: string, zp: string | undefined): Q => {
    const scale = values(s);
    const zpT = zp ? init.get(zp) : undefined;
    return { scale, zeroPoint: zpT ? tensorValues(zpT) : scale.map(() => 0), elemType: zpT?.dataType ?? OnnxDataType.UINT8, scaleName: s, zeroPointName: zp || undefined };
  };
  const range = (q: Q): [number, number] => {
    const [lo, hi] = q.elemType === OnnxDataType.INT8 ? [-128, 127] : [0, 255];
    return [(lo - q.zeroPoint[0]) * q.scale[0], (hi - q.zeroPoint[0]) * q.scale[0]];
  };
  const floatInit = (base: string, dims: number[], data: ArrayLike<number>): string => {
    const name = fresh(base);
    newInits.push(makeTensor(name, OnnxDataType.FLOAT, dims, data));
    return name;
  };

  const out: OnnxNode[] = [];
  /** Quantised tensor → its float twin (made by a converted node, or by a DequantizeLinear added here). */
  const floatName = new Map<string, string>();
  /** Quantised tensor names that only exist as floats (their producer was converted). */
  const floatOnly = new Map<string, Q>();
  /** Quantisation parameters of every quantised activation, from the node that produced it. */
  const qOf = new Map<string, Q>();

  const asFloat = (x: string): string => {
    const f = floatName.get(x);
    if (f) return f;
    const q = qOf.get(x);
    if (!q) throw new Error(`quantize: no quantisation parameters known for ${x}`);
    const name = fresh(`${x}_float`);
    out.push(makeNode('DequantizeLinear', [x, q.scaleName, ...(q.zeroPointName ? [q.zeroPointName] : [])], [name], { name: fresh(`${x}_dequantize`) }));
    floatName.set(x, name);
    return name;
  };
  const asQuant = (x: string): string => {
    const q = floatOnly.get(x);
    if (!q) return x;
    // Re-create the quantised tensor under its own name (first int8 reader).
    out.push(makeNode('QuantizeLinear', [floatName.get(x)!, q.scaleName, ...(q.zeroPointName ? [q.zeroPointName] : [])], [x], { name: fresh(`${x}_quantize`) }));
    floatOnly.delete(x);
    return x;
  };
  /** A float result standing for quantised tensor `y` (params q): clipped to q's range as configured. */
  const floatResult = (y: string, value: string, q: Q): void => {
    const [lo, hi] = range(q);
    const clip = clipMode === 'all' || (clipMode === 'activations' && Math.abs(lo) < 1e-12);
    let v = value;
    if (clip) {
      v = fresh(`${y}_clipped`);
      out.push(makeNode('Clip', [value, floatInit(`${y}_min`, [], [lo]), floatInit(`${y}_max`, [], [hi])], [v], { name: fresh(`${y}_clip`) }));
    }
    floatName.set(y, v);
    floatOnly.set(y, q);
    qOf.set(y, q);
  };

  for (const n of g.nodes) {
    const std = n.domain === '' || n.domain === 'ai.onnx';
    if (std && n.opType === 'QuantizeLinear' && !init.has(n.inputs[0])) {
      const q = qparams(n.inputs[1], n.inputs[2]);
      if (toFloat('input', n)) {
        floatResult(n.outputs[0], n.inputs[0], q);
      } else {
        out.push(n);
        qOf.set(n.outputs[0], q);
        floatName.set(n.outputs[0], n.inputs[0]);
      }
    } else if (std && n.opType === 'DequantizeLinear' && qOf.has(n.inputs[0])) {
      out.push(makeNode('Identity', [asFloat(n.inputs[0])], [n.outputs[0]], { name: n.name }));
    } else if (std && n.opType === 'QLinearConv') {
      const [x, xs, xzp, w, ws, wzp, ys, yzp, b] = n.inputs;
      const wt = init.get(w)!;
      const group = intAttr(n, 'group') ?? 1;
      const kind: QOpKind = group > 1 ? 'depthwise' : wt.dims.slice(2).every((d) => d === 1) ? 'pointwise' : 'conv';
      const yq = qparams(ys, yzp);
      if (!toFloat(kind, n)) {
        out.push({ ...n, inputs: [asQuant(x), ...n.inputs.slice(1)] });
        qOf.set(n.outputs[0], yq);
        continue;
      }
      const xq = qparams(xs, xzp);
      const wq = qparams(ws, wzp);
      const cout = wt.dims[0];
      const per = wt.dims.slice(1).reduce((a, c) => a * c, 1);
      const sc = (c: number): number => (wq.scale.length === 1 ? wq.scale[0] : wq.scale[c]);
      const zc = (c: number): number => (wq.zeroPoint.length === 1 ? wq.zeroPoint[0] : wq.zeroPoint[c]);
      let wName: string;
      if (weights === 'float') {
        const wv = values(w);
        const f = new Float32Array(wv.length);
        for (let c = 0; c < cout; c++) for (let k = 0; k < per; k++) f[c * per + k] = (wv[c * per + k] - zc(c)) * sc(c);
        wName = floatInit(`${w}_float`, wt.dims, f);
      } else {
        wName = fresh(`${w}_dequantized`);
        const perChannel = wq.scale.length > 1;
        out.push(makeNode('DequantizeLinear', [w, ws, ...(wzp ? [wzp] : [])], [wName], { name: fresh(`${w}_dequantize`), attributes: perChannel ? [makeAttribute('axis', 0)] : [] }));
      }
      const inputs = [asFloat(x), wName];
      if (b) {
        const bv = values(b);
        inputs.push(floatInit(`${b}_float`, [cout], bv.map((v, c) => v * xq.scale[0] * sc(c))));
      }
      const conv = fresh(`${n.outputs[0]}_conv`);
      out.push(makeNode('Conv', inputs, [conv], { name: n.name || fresh('conv'), attributes: n.attributes }));
      floatResult(n.outputs[0], conv, yq);
    } else if (n.domain === 'com.microsoft' && n.opType === 'QLinearAdd') {
      const [a, , , bb, , , cs, czp] = n.inputs;
      const cq = qparams(cs, czp);
      if (!toFloat('add', n)) {
        out.push({ ...n, inputs: n.inputs.map((t, i) => (i === 0 || i === 3 ? asQuant(t) : t)) });
        qOf.set(n.outputs[0], cq);
        continue;
      }
      const sum = fresh(`${n.outputs[0]}_sum`);
      out.push(makeNode('Add', [asFloat(a), asFloat(bb)], [sum], { name: n.name || fresh('add') }));
      floatResult(n.outputs[0], sum, cq);
    } else {
      out.push({ ...n, inputs: n.inputs.map(asQuant) });
    }
  }
  const live = new Set(out.flatMap((n) => n.inputs));
  const initializers = [...g.initializers.filter((t) => live.has(t.name)), ...newInits.filter((t) => live.has(t.name))];
  const changed = new Set([...floatName.keys()]);
  return { ...model, graph: { ...g, nodes: out, initializers, valueInfo: g.valueInfo.filter((v) => !changed.has(v.name)) } };
}

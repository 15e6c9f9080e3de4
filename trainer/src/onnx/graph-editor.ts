/**
 * Editing an ONNX graph node by node (the quantisation passes): fresh names,
 * initializer values, new tensors and nodes, quantisation parameters, and the
 * rewritten model with only live initializers.
 */
import {
  OnnxDataType,
  attributeName,
  makeAttribute,
  makeNode,
  makeTensor,
  tensorValues,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from './onnx-proto.ts';
import { decodeMessage, repeatedVarints, toInt64, varintOf } from './protobuf-wire.ts';
import { assertValidModel } from './check-graph.ts';

export interface TensorRange {
  min: number;
  max: number;
}

/** Quantisation parameters of one tensor (scale/zero point per channel when longer than 1). */
export interface QParams {
  scale: number[];
  zeroPoint: number[];
  elemType: number;
  scaleName: string;
  zeroPointName?: string;
}

/** Integer attribute of a node (undefined when absent). */
export function intAttribute(n: OnnxNode, name: string): number | undefined {
  for (const a of n.attributes) {
    if (attributeName(a) !== name) continue;
    const v = varintOf(decodeMessage(a), 3);
    return v === undefined ? undefined : Number(v);
  }
  return undefined;
}

/** Integer-list attribute of a node (undefined when absent). */
export function intsAttribute(n: OnnxNode, name: string): number[] | undefined {
  for (const a of n.attributes) if (attributeName(a) === name) return repeatedVarints(decodeMessage(a), 8).map(toInt64);
  return undefined;
}

export const isStd = (n: OnnxNode): boolean => n.domain === '' || n.domain === 'ai.onnx';

/** Names, initializers and new nodes of a graph being rewritten. */
export class Editor {
  readonly init: Map<string, OnnxTensor>;
  readonly added: OnnxTensor[] = [];
  readonly nodes: OnnxNode[] = [];
  private readonly used = new Set<string>();
  private readonly cache = new Map<string, number[]>();

  constructor(model: OnnxModel) {
    const g = model.graph;
    this.init = new Map(g.initializers.map((t) => [t.name, t]));
    for (const n of g.nodes) for (const t of [...n.inputs, ...n.outputs]) this.used.add(t);
    for (const t of g.initializers) this.used.add(t.name);
    for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) this.used.add(v.name);
  }

  fresh(base: string): string {
    let name = base;
    for (let i = 2; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  values(name: string): number[] {
    let v = this.cache.get(name);
    if (!v) {
      const t = this.init.get(name) ?? this.added.find((a) => a.name === name);
      if (!t) throw new Error(`quantize: "${name}" is not an initializer`);
      v = tensorValues(t);
      this.cache.set(name, v);
    }
    return v;
  }

  tensor(base: string, type: number, dims: number[], data: ArrayLike<number>): string {
    const name = this.fresh(base);
    this.added.push(makeTensor(name, type, dims, data));
    return name;
  }

  float(base: string, dims: number[], data: ArrayLike<number>): string {
    return this.tensor(base, OnnxDataType.FLOAT, dims, data);
  }

  node(op: string, inputs: string[], outputs: string[], attributes: Uint8Array[] = [], domain = ''): void {
    this.nodes.push(makeNode(op, inputs, outputs, { name: this.fresh(`${outputs[0]}_${op}`), attributes, domain }));
  }

  /**
   * Float weights from a stored int8/uint8 initializer: Cast → [Sub zero point] → Mul scale
   * (per `axis` when longer than 1), the same values as DequantizeLinear. onnxruntime
   * constant-folds these at session creation, but leaves a DequantizeLinear of a
   * constant to run on every inference (it keeps DequantizeLinear for its QDQ passes).
   */
  dequantizedConstant(stored: string, dims: number[], scale: number[], zeroPoint: number[], axis: number): string {
    const perAxis = (v: number[]): number[] => (v.length > 1 ? dims.map((d, i) => (i === axis ? d : 1)) : []);
    let f = this.fresh(`${stored}_float`);
    this.node('Cast', [stored], [f], [makeAttribute('to', OnnxDataType.FLOAT)]);
    if (zeroPoint.some((z) => z !== 0)) {
      const c = this.fresh(`${stored}_centred`);
      this.node('Sub', [f, this.float(`${stored}_zero_point_float`, perAxis(zeroPoint), zeroPoint)], [c]);
      f = c;
    }
    const out = this.fresh(`${stored}_dequantized`);
    this.node('Mul', [f, this.float(`${stored}_scale_float`, perAxis(scale), scale)], [out]);
    return out;
  }

  qparams(scaleName: string, zpName: string | undefined): QParams {
    const scale = this.values(scaleName);
    const zpT = zpName ? (this.init.get(zpName) ?? this.added.find((a) => a.name === zpName)) : undefined;
    return {
      scale,
      zeroPoint: zpName && zpT ? this.values(zpName) : scale.map(() => 0),
      elemType: zpT?.dataType ?? OnnxDataType.UINT8,
      scaleName,
      zeroPointName: zpName || undefined,
    };
  }

  /** The rewritten model: new nodes, only referenced initializers, value info of retyped tensors dropped. */
  finish(model: OnnxModel, retyped: Set<string> = new Set()): OnnxModel {
    const g = model.graph;
    const live = new Set(this.nodes.flatMap((n) => n.inputs));
    const initializers = [...g.initializers, ...this.added].filter((t) => live.has(t.name));
    const out = {
      ...model,
      graph: { ...g, nodes: this.nodes, initializers, valueInfo: g.valueInfo.filter((v) => !retyped.has(v.name)) },
    };
    assertValidModel(out);
    return out;
  }
}

/** Every integer up to 2^24 is exact in float32. */
export const EXACT_FLOAT_INT = 2 ** 24;

/** The centred integer range [q_min - z, q_max - z] of a tensor quantised with `q` (scalar zero point). */
export function centredRange(q: QParams): [number, number] {
  const z = q.zeroPoint[0];
  return q.elemType === OnnxDataType.INT8 ? [-128 - z, 127 - z] : [-z, 255 - z];
}

/**
 * The first output channel of a [Cout, ...] integer kernel whose worst-case
 * |accumulator| (every input at the far end of `xRange`, plus the bias) reaches
 * 2^24, where float32 sums stop being exact; -1 when none does.
 */
export function inexactChannel(
  w: ArrayLike<number>,
  wz: number[],
  b: ArrayLike<number> | undefined,
  cout: number,
  xRange: [number, number],
): number {
  const per = w.length / cout;
  const xMax = Math.max(Math.abs(xRange[0]), Math.abs(xRange[1]));
  for (let c = 0; c < cout; c++) {
    const z = at(wz, c);
    let sum = 0;
    for (let k = 0; k < per; k++) sum += Math.abs(w[c * per + k] - z);
    if (sum * xMax + Math.abs(b?.[c] ?? 0) >= EXACT_FLOAT_INT) return c;
  }
  return -1;
}

export const at = (v: number[], c: number): number => (v.length === 1 ? v[0] : v[c]);

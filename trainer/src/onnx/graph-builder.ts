/**
 * A small in-memory ONNX graph under construction: nodes with plain-object
 * attributes and initializers as typed arrays, so that rewrite passes (see
 * fold.ts) can read and change weights before anything is encoded with
 * onnx-proto.ts.
 */
import { OnnxDataType, makeAttribute, makeNode, makeTensor, type OnnxNode, type OnnxTensor } from './onnx-proto.ts';

/** An attribute value: integer, string, integer list, or an explicit float / float list. */
export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };

export interface BuilderNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  name: string;
  domain: string;
}

export interface Initializer {
  name: string;
  dims: number[];
  /** FLOAT or INT64 (OnnxDataType). */
  type: number;
  data: Float32Array | number[];
}

/** Opset from which Reduce* ops other than ReduceSum take `axes` as an input (ReduceSum: 13). */
export const REDUCE_AXES_INPUT_OPSET = 18;

export class GraphBuilder {
  readonly opset: number;
  readonly nodes: BuilderNode[] = [];
  readonly initializers = new Map<string, Initializer>();
  private readonly used: Set<string>;

  /** `reserved`: tensor names already taken (e.g. by a backbone graph this will be appended to). */
  constructor(opset: number, reserved: Iterable<string> = []) {
    this.opset = opset;
    this.used = new Set(reserved);
  }

  /** A name not used yet, `base` itself when free. */
  fresh(base: string): string {
    let name = base;
    for (let i = 2; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  /** Every name taken so far. */
  names(): string[] {
    return [...this.used];
  }

  /** Claims a name that must stay exactly as given (graph inputs and outputs). */
  claim(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX export: tensor name "${name}" is already used`);
    this.used.add(name);
    return name;
  }

  floatInit(base: string, dims: number[], data: ArrayLike<number>): string {
    const size = dims.reduce((a, b) => a * b, 1);
    if (data.length !== size)
      throw new Error(`ONNX export: initializer ${base} has ${data.length} values, dims [${dims}] need ${size}`);
    const name = this.fresh(base);
    this.initializers.set(name, { name, dims, type: OnnxDataType.FLOAT, data: Float32Array.from(data) });
    return name;
  }

  int64Init(base: string, dims: number[], data: number[]): string {
    const name = this.fresh(base);
    this.initializers.set(name, { name, dims, type: OnnxDataType.INT64, data: [...data] });
    return name;
  }

  /** Adds a node; returns its first output (named from `out`, made unique). */
  add(
    op: string,
    inputs: string[],
    out: string,
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; output?: string } = {},
  ): string {
    const output = opts.output ? this.claim(opts.output) : this.fresh(out);
    this.nodes.push({
      op,
      inputs,
      outputs: [output],
      attrs,
      name: this.fresh(`${out}_node`),
      domain: opts.domain ?? '',
    });
    return output;
  }

  /**
   * A Reduce* node over `axes`: the axes are an attribute before opset 18 and an
   * int64 input from 18 on (ReduceSum itself switched at 13, so it is not used here).
   */
  reduce(
    op: 'ReduceSumSquare' | 'ReduceMin' | 'ReduceMax' | 'ReduceMean',
    x: string,
    axes: number[],
    keepdims: boolean,
    out: string,
  ): string {
    if (this.opset >= REDUCE_AXES_INPUT_OPSET) {
      return this.add(op, [x, this.int64Init(`${out}_axes`, [axes.length], axes)], out, { keepdims: keepdims ? 1 : 0 });
    }
    return this.add(op, [x], out, { axes, keepdims: keepdims ? 1 : 0 });
  }

  /** Tensors produced by nodes (for consumer/producer look-ups in passes). */
  producerOf(tensor: string): BuilderNode | undefined {
    return this.nodes.find((n) => n.outputs.includes(tensor));
  }

  consumersOf(tensor: string): BuilderNode[] {
    return this.nodes.filter((n) => n.inputs.includes(tensor));
  }

  /** Encoded nodes and initializers (only those still referenced). */
  encode(): { nodes: OnnxNode[]; initializers: OnnxTensor[] } {
    const referenced = new Set(this.nodes.flatMap((n) => n.inputs));
    return {
      nodes: this.nodes.map(encodeNode),
      initializers: [...this.initializers.values()]
        .filter((t) => referenced.has(t.name))
        .map((t) => makeTensor(t.name, t.type, t.dims, t.data)),
    };
  }
}

export function encodeNode(n: BuilderNode): OnnxNode {
  const attributes = Object.entries(n.attrs).map(([k, v]) => {
    if (typeof v === 'object' && !Array.isArray(v) && 'float' in v) return makeAttribute(k, v.float, 'float');
    return makeAttribute(k, v as number | string | number[] | { floats: number[] });
  });
  return makeNode(n.op, n.inputs, n.outputs, { name: n.name, domain: n.domain, attributes });
}

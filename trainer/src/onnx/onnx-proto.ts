/**
 * A minimal ONNX model reader/writer on top of protobuf-wire.ts. It parses the
 * parts of a graph that graph surgery needs (nodes, initializer names and
 * scalar values, inputs/outputs) and keeps everything else as the original
 * bytes, so a decode → edit → encode cycle loses nothing.
 *
 * Field numbers follow onnx/onnx.proto (ModelProto.graph = 7, GraphProto.node = 1, ...).
 */
import {
  bytesField,
  decodeMessage,
  decodeString,
  encodeMessage,
  float32Field,
  lastField,
  messageField,
  packedFloat32Field,
  repeatedBytes,
  repeatedFloat32,
  repeatedStrings,
  repeatedVarints,
  stringField,
  stringOf,
  toInt64,
  varintField,
  varintOf,
  type ProtoField,
} from './protobuf-wire.ts';

/** TensorProto.DataType values used here. */
export const OnnxDataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
} as const;

const MODEL = { irVersion: 1, graph: 7, opsetImport: 8 } as const;
const GRAPH = { node: 1, name: 2, initializer: 5, input: 11, output: 12, valueInfo: 13 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const ATTR = { name: 1, f: 2, i: 3, s: 4, t: 5, floats: 7, ints: 8, type: 20 } as const;
const ATTR_TYPE = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;
const TENSOR = { dims: 1, dataType: 2, floatData: 4, int32Data: 5, int64Data: 7, name: 8, rawData: 9 } as const;
const VALUE_INFO = { name: 1, type: 2 } as const;
const TYPE = { tensorType: 1 } as const;
const TENSOR_TYPE = { elemType: 1, shape: 2 } as const;
const SHAPE = { dim: 1 } as const;
const DIM = { value: 1, param: 2 } as const;
const OPSET = { domain: 1, version: 2 } as const;

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  /** Encoded AttributeProto messages, passed through untouched. */
  attributes: Uint8Array[];
}

export interface OnnxTensor {
  name: string;
  dataType: number;
  dims: number[];
  /** The whole encoded TensorProto. */
  raw: Uint8Array;
}

/** A dimension: a fixed size, a symbolic name (e.g. 'batch_size'), or unknown. */
export type OnnxDim = number | string | null;

export interface OnnxValueInfo {
  name: string;
  elemType?: number;
  shape?: OnnxDim[];
  /** The whole encoded ValueInfoProto. */
  raw: Uint8Array;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  valueInfo: OnnxValueInfo[];
  /** Graph fields this reader does not model (doc_string, sparse initializers, ...), kept verbatim. */
  other: ProtoField[];
}

export interface OnnxModel {
  graph: OnnxGraph;
  /** Model fields other than the graph (ir_version, opset_import, producer, ...), kept verbatim. */
  other: ProtoField[];
}

// ---- decoding ---------------------------------------------------------------

export function decodeModel(bytes: Uint8Array): OnnxModel {
  const fields = decodeMessage(bytes);
  const g = lastField(fields, MODEL.graph);
  if (g?.wire !== 2) throw new Error('ONNX: model has no graph');
  return { graph: decodeGraph(g.value), other: fields.filter((f) => f.no !== MODEL.graph) };
}

export function decodeGraph(bytes: Uint8Array): OnnxGraph {
  const fields = decodeMessage(bytes);
  const modelled = new Set<number>(Object.values(GRAPH));
  return {
    name: stringOf(fields, GRAPH.name),
    nodes: repeatedBytes(fields, GRAPH.node).map(decodeNode),
    initializers: repeatedBytes(fields, GRAPH.initializer).map(decodeTensor),
    inputs: repeatedBytes(fields, GRAPH.input).map(decodeValueInfo),
    outputs: repeatedBytes(fields, GRAPH.output).map(decodeValueInfo),
    valueInfo: repeatedBytes(fields, GRAPH.valueInfo).map(decodeValueInfo),
    other: fields.filter((f) => !modelled.has(f.no)),
  };
}

function decodeNode(bytes: Uint8Array): OnnxNode {
  const f = decodeMessage(bytes);
  return {
    name: stringOf(f, NODE.name),
    opType: stringOf(f, NODE.opType),
    domain: stringOf(f, NODE.domain),
    inputs: repeatedStrings(f, NODE.input),
    outputs: repeatedStrings(f, NODE.output),
    attributes: repeatedBytes(f, NODE.attribute),
  };
}

function decodeTensor(bytes: Uint8Array): OnnxTensor {
  const f = decodeMessage(bytes);
  return {
    name: stringOf(f, TENSOR.name),
    dataType: Number(varintOf(f, TENSOR.dataType) ?? 0n),
    dims: repeatedVarints(f, TENSOR.dims).map(toInt64),
    raw: bytes,
  };
}

function decodeValueInfo(bytes: Uint8Array): OnnxValueInfo {
  const f = decodeMessage(bytes);
  const info: OnnxValueInfo = { name: stringOf(f, VALUE_INFO.name), raw: bytes };
  const type = lastField(f, VALUE_INFO.type);
  if (type?.wire !== 2) return info;
  const tensorType = lastField(decodeMessage(type.value), TYPE.tensorType);
  if (tensorType?.wire !== 2) return info;
  const tt = decodeMessage(tensorType.value);
  const elem = varintOf(tt, TENSOR_TYPE.elemType);
  if (elem !== undefined) info.elemType = Number(elem);
  const shape = lastField(tt, TENSOR_TYPE.shape);
  if (shape && shape.wire === 2) {
    info.shape = repeatedBytes(decodeMessage(shape.value), SHAPE.dim).map((d) => {
      const df = decodeMessage(d);
      const v = varintOf(df, DIM.value);
      if (v !== undefined) return toInt64(v);
      const p = lastField(df, DIM.param);
      return p && p.wire === 2 ? decodeString(p.value) : null;
    });
  }
  return info;
}

/** Element count of a tensor (1 for a scalar with no dims). */
export function tensorSize(t: OnnxTensor): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

/** All values of a numeric initializer as numbers (raw_data or the typed *_data fields). */
export function tensorValues(t: OnnxTensor): number[] {
  const f = decodeMessage(t.raw);
  const raw = lastField(f, TENSOR.rawData);
  if (raw && raw.wire === 2 && raw.value.length > 0) {
    const b = raw.value;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const out: number[] = [];
    switch (t.dataType) {
      case OnnxDataType.FLOAT:
        for (let i = 0; i + 4 <= b.length; i += 4) out.push(dv.getFloat32(i, true));
        return out;
      case OnnxDataType.UINT8:
        return Array.from(b);
      case OnnxDataType.INT8:
        return Array.from(new Int8Array(b.buffer, b.byteOffset, b.byteLength));
      case OnnxDataType.INT32:
        for (let i = 0; i + 4 <= b.length; i += 4) out.push(dv.getInt32(i, true));
        return out;
      case OnnxDataType.INT64:
        for (let i = 0; i + 8 <= b.length; i += 8) out.push(Number(dv.getBigInt64(i, true)));
        return out;
      default:
        throw new Error(`ONNX: cannot read raw data of type ${t.dataType} (${t.name})`);
    }
  }
  if (t.dataType === OnnxDataType.FLOAT) return repeatedFloat32(f, TENSOR.floatData);
  if (t.dataType === OnnxDataType.INT64) return repeatedVarints(f, TENSOR.int64Data).map(toInt64);
  // int32_data carries int32, int8, uint8 and friends.
  return repeatedVarints(f, TENSOR.int32Data).map((v) => Number(BigInt.asIntN(32, v)));
}

/** The value of a one-element initializer, or undefined if it has more elements. */
export function tensorScalar(t: OnnxTensor): number | undefined {
  if (tensorSize(t) !== 1) return undefined;
  const v = tensorValues(t);
  return v.length === 1 ? v[0] : undefined;
}

/** Opset imports of a model: domain ('' = ai.onnx) → version. */
export function opsetImports(model: OnnxModel): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of model.other) {
    if (f.no !== MODEL.opsetImport || f.wire !== 2) continue;
    const o = decodeMessage(f.value);
    out.set(stringOf(o, OPSET.domain), Number(varintOf(o, OPSET.version) ?? 0n));
  }
  return out;
}

// ---- encoding ---------------------------------------------------------------

export function encodeModel(model: OnnxModel): Uint8Array {
  // Graph goes in field-number order among the others, as protobuf writers do.
  const graph = bytesField(MODEL.graph, encodeGraph(model.graph));
  const fields = [
    ...model.other.filter((f) => f.no < MODEL.graph),
    graph,
    ...model.other.filter((f) => f.no > MODEL.graph),
  ];
  return encodeMessage(fields);
}

export function encodeGraph(g: OnnxGraph): Uint8Array {
  const fields: ProtoField[] = [
    ...g.nodes.map((n) => bytesField(GRAPH.node, encodeNode(n))),
    ...(g.name ? [stringField(GRAPH.name, g.name)] : []),
    ...g.initializers.map((t) => bytesField(GRAPH.initializer, t.raw)),
    ...g.other,
    ...g.inputs.map((v) => bytesField(GRAPH.input, v.raw)),
    ...g.outputs.map((v) => bytesField(GRAPH.output, v.raw)),
    ...g.valueInfo.map((v) => bytesField(GRAPH.valueInfo, v.raw)),
  ];
  return encodeMessage(fields);
}

export function encodeNode(n: OnnxNode): Uint8Array {
  return encodeMessage([
    ...n.inputs.map((s) => stringField(NODE.input, s)),
    ...n.outputs.map((s) => stringField(NODE.output, s)),
    ...(n.name ? [stringField(NODE.name, n.name)] : []),
    stringField(NODE.opType, n.opType),
    ...n.attributes.map((a) => bytesField(NODE.attribute, a)),
    ...(n.domain ? [stringField(NODE.domain, n.domain)] : []),
  ]);
}

// ---- builders (for graph surgery and for tests) ---------------------------

export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  opts: { name?: string; domain?: string; attributes?: Uint8Array[] } = {},
): OnnxNode {
  return {
    opType,
    inputs,
    outputs,
    name: opts.name ?? '',
    domain: opts.domain ?? '',
    attributes: opts.attributes ?? [],
  };
}

/** A tensor value description; an undefined shape means "unknown rank". */
export function makeValueInfo(name: string, elemType: number, shape?: OnnxDim[]): OnnxValueInfo {
  const typeFields: ProtoField[] = [varintField(TENSOR_TYPE.elemType, elemType)];
  if (shape) {
    const dims = shape.map((d) =>
      messageField(
        SHAPE.dim,
        d === null ? [] : typeof d === 'number' ? [varintField(DIM.value, d)] : [stringField(DIM.param, d)],
      ),
    );
    typeFields.push(messageField(TENSOR_TYPE.shape, dims));
  }
  const tensorType = messageField(TYPE.tensorType, typeFields);
  const raw = encodeMessage([stringField(VALUE_INFO.name, name), messageField(VALUE_INFO.type, [tensorType])]);
  return { name, elemType, shape, raw };
}

/** An initializer stored as raw little-endian bytes (float32, uint8, int8, int32 or int64 values). */
export function makeTensor(name: string, dataType: number, dims: number[], values: ArrayLike<number>): OnnxTensor {
  const n = values.length;
  let bytes: Uint8Array;
  if (dataType === OnnxDataType.FLOAT) bytes = new Uint8Array(Float32Array.from(values).buffer);
  else if (dataType === OnnxDataType.UINT8) bytes = Uint8Array.from(values);
  else if (dataType === OnnxDataType.INT8) bytes = new Uint8Array(Int8Array.from(values).buffer);
  else if (dataType === OnnxDataType.INT32) bytes = new Uint8Array(Int32Array.from(values).buffer);
  else if (dataType === OnnxDataType.INT64)
    bytes = new Uint8Array(BigInt64Array.from(Array.from({ length: n }, (_, i) => BigInt(values[i]))).buffer);
  else throw new Error(`makeTensor: unsupported data type ${dataType}`);
  const raw = encodeMessage([
    ...dims.map((d) => varintField(TENSOR.dims, d)),
    varintField(TENSOR.dataType, dataType),
    stringField(TENSOR.name, name),
    bytesField(TENSOR.rawData, bytes),
  ]);
  return { name, dataType, dims, raw };
}

export type AttributeValue = number | string | number[] | { floats: number[] };

/** Encodes an attribute: integer → INT, string → STRING, number[] → INTS, { floats } → FLOATS; `float` forces FLOAT. */
export function makeAttribute(name: string, value: AttributeValue, kind?: 'float'): Uint8Array {
  const fields: ProtoField[] = [stringField(ATTR.name, name)];
  if (kind === 'float' && typeof value === 'number') {
    fields.push(float32Field(ATTR.f, value), varintField(ATTR.type, ATTR_TYPE.FLOAT));
  } else if (typeof value === 'number') {
    fields.push(varintField(ATTR.i, value), varintField(ATTR.type, ATTR_TYPE.INT));
  } else if (typeof value === 'string') {
    fields.push(stringField(ATTR.s, value), varintField(ATTR.type, ATTR_TYPE.STRING));
  } else if (Array.isArray(value)) {
    for (const v of value) fields.push(varintField(ATTR.ints, v));
    fields.push(varintField(ATTR.type, ATTR_TYPE.INTS));
  } else {
    fields.push(packedFloat32Field(ATTR.floats, value.floats), varintField(ATTR.type, ATTR_TYPE.FLOATS));
  }
  return encodeMessage(fields);
}

/** Name of an encoded attribute (for inspection). */
export function attributeName(attr: Uint8Array): string {
  return stringOf(decodeMessage(attr), ATTR.name);
}

/** A fresh model around a graph: ir_version + opset imports ('' = ai.onnx). */
export function makeModel(graph: OnnxGraph, opsets: Record<string, number>, irVersion = 8): OnnxModel {
  const other: ProtoField[] = [varintField(MODEL.irVersion, irVersion)];
  for (const [domain, version] of Object.entries(opsets)) {
    other.push(
      messageField(MODEL.opsetImport, [
        ...(domain ? [stringField(OPSET.domain, domain)] : []),
        varintField(OPSET.version, version),
      ]),
    );
  }
  return { graph, other };
}

export function makeGraph(parts: Partial<OnnxGraph> & Pick<OnnxGraph, 'nodes' | 'inputs' | 'outputs'>): OnnxGraph {
  return { name: 'graph', initializers: [], valueInfo: [], other: [], ...parts };
}

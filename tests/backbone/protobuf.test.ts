import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  OnnxDataType,
  attributeName,
  decodeModel,
  encodeModel,
  makeAttribute,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  opsetImports,
  tensorScalar,
  tensorValues,
} from '../../trainer/src/onnx/onnx-proto.ts';
import {
  decodeMessage,
  encodeMessage,
  float32Field,
  messageField,
  packedFloat32Field,
  readVarint,
  repeatedFloat32,
  repeatedVarints,
  stringField,
  stringOf,
  toInt64,
  varintField,
  writeVarint,
} from '../../trainer/src/onnx/protobuf-wire.ts';
import { HAS_MOBILENET, MOBILENET_ONNX, NO_DATA_NOTE, tinyQuantModel } from './helpers.ts';

describe('protobuf wire format', () => {
  it('round-trips varints including 64-bit and negative int64 values', () => {
    const values = [0n, 1n, 127n, 128n, 300n, (1n << 28n) - 1n, 1n << 28n, (1n << 53n) + 7n, (1n << 64n) - 1n];
    for (const v of values) {
      const out: number[] = [];
      writeVarint(out, v);
      const [back, end] = readVarint(Uint8Array.from(out), 0);
      expect(back).toBe(v);
      expect(end).toBe(out.length);
    }
    const neg: number[] = [];
    writeVarint(neg, -1);
    expect(neg.length).toBe(10);
    expect(toInt64(readVarint(Uint8Array.from(neg), 0)[0])).toBe(-1);
    expect([
      ...Uint8Array.from(
        (() => {
          const o: number[] = [];
          writeVarint(o, 300);
          return o;
        })(),
      ),
    ]).toEqual([0xac, 0x02]);
  });

  it('decodes what it encodes, byte for byte, with nested messages', () => {
    const inner = [stringField(1, 'héllo'), varintField(2, 42)];
    const fields = [
      varintField(1, 7),
      messageField(3, inner),
      float32Field(4, 1.5),
      packedFloat32Field(5, [1, -2, 0.25]),
      stringField(6, ''),
    ];
    const bytes = encodeMessage(fields);
    const back = decodeMessage(bytes);
    expect(encodeMessage(back)).toEqual(bytes);
    expect(back.map((f) => f.no)).toEqual([1, 3, 4, 5, 6]);
    const nested = back[1];
    expect(nested.wire).toBe(2);
    const innerBack = decodeMessage(nested.value as Uint8Array);
    expect(stringOf(innerBack, 1)).toBe('héllo');
    expect(repeatedFloat32(back, 5)).toEqual([1, -2, 0.25]);
    expect(repeatedFloat32(back, 4)).toEqual([1.5]);
  });

  it('reads repeated varints packed and unpacked', () => {
    const unpacked = [varintField(1, 3), varintField(1, 224)];
    const packedBytes: number[] = [];
    writeVarint(packedBytes, 3);
    writeVarint(packedBytes, 224);
    const packed = [{ no: 1, wire: 2 as const, value: Uint8Array.from(packedBytes) }];
    expect(repeatedVarints(decodeMessage(encodeMessage(unpacked)), 1)).toEqual([3n, 224n]);
    expect(repeatedVarints(decodeMessage(encodeMessage(packed)), 1)).toEqual([3n, 224n]);
  });

  it('rejects truncated input', () => {
    const bytes = encodeMessage([stringField(1, 'abcdef')]);
    expect(() => decodeMessage(bytes.subarray(0, 4))).toThrow(/overruns/);
    expect(() => decodeMessage(Uint8Array.from([0x08, 0x80]))).toThrow(/truncated/);
  });
});

describe('ONNX model reader/writer', () => {
  it('lists nodes, initializer scalars, inputs and outputs of a model it wrote', () => {
    const m = decodeModel(tinyQuantModel());
    expect(m.graph.nodes.map((n) => `${n.domain}:${n.opType}`)).toEqual([
      ':QuantizeLinear',
      'com.microsoft:QLinearGlobalAveragePool',
      ':DequantizeLinear',
    ]);
    expect(m.graph.nodes[1].inputs).toEqual(['xq', 'x_scale', 'x_zp', 'y_scale', 'y_zp']);
    const init = new Map(m.graph.initializers.map((t) => [t.name, t]));
    expect(tensorScalar(init.get('x_scale')!)).toBeCloseTo(0.1, 7);
    expect(tensorScalar(init.get('x_zp')!)).toBe(128);
    expect(init.get('x_zp')!.dataType).toBe(OnnxDataType.UINT8);
    expect(m.graph.inputs[0]).toMatchObject({ name: 'X', elemType: OnnxDataType.FLOAT, shape: ['N', 3, 3, 3] });
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['Y']);
    expect(opsetImports(m)).toEqual(
      new Map([
        ['', 13],
        ['com.microsoft', 1],
      ]),
    );
  });

  it('re-encodes a decoded model to identical bytes', () => {
    const bytes = tinyQuantModel();
    expect(encodeModel(decodeModel(bytes))).toEqual(bytes);
  });

  it('reads tensor values of each stored type', () => {
    expect(tensorValues(makeTensor('f', OnnxDataType.FLOAT, [3], [1.5, -2, 0]))).toEqual([1.5, -2, 0]);
    expect(tensorValues(makeTensor('i8', OnnxDataType.INT8, [2], [-128, 127]))).toEqual([-128, 127]);
    expect(tensorValues(makeTensor('i64', OnnxDataType.INT64, [2], [-1, 5]))).toEqual([-1, 5]);
    expect(tensorScalar(makeTensor('v', OnnxDataType.FLOAT, [2], [1, 2]))).toBeUndefined();
  });

  it('builds nodes with attributes', () => {
    const n = makeNode('Transpose', ['a'], ['b'], { attributes: [makeAttribute('perm', [0, 2, 3, 1])] });
    expect(attributeName(n.attributes[0])).toBe('perm');
    const g = makeGraph({
      nodes: [n],
      inputs: [makeValueInfo('a', 1, [1, 2, 3, 4])],
      outputs: [makeValueInfo('b', 1)],
    });
    const back = decodeModel(encodeModel(makeModel(g, { '': 13 })));
    expect(back.graph.nodes[0]).toMatchObject({ opType: 'Transpose', inputs: ['a'], outputs: ['b'] });
    expect(back.graph.outputs[0].shape).toBeUndefined();
  });

  it('reads the real int8 MobileNetV2 and re-encodes it byte for byte', (ctx) => {
    ctx.skip(!HAS_MOBILENET, NO_DATA_NOTE);
    const bytes = new Uint8Array(readFileSync(MOBILENET_ONNX));
    const m = decodeModel(bytes);
    const gap = m.graph.nodes.find((n) => n.opType === 'QLinearGlobalAveragePool');
    expect(gap?.domain).toBe('com.microsoft');
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['output']);
    // Buffer.compare: toEqual on megabytes is very slow.
    expect(Buffer.compare(Buffer.from(encodeModel(m)), Buffer.from(bytes))).toBe(0);
  });
});

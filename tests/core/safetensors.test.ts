import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeTensorFile,
  encodeTensorFile,
  loadTensorFile,
  META_KEY,
  saveTensorFile,
} from '../../trainer/src/core/tensor-file.ts';
import { loadCheckpoint } from '../../trainer/src/run/checkpoint.ts';
import type { HostTensors } from '../../trainer/src/core/host-tensors.ts';

/** Bytes of a float32 in little-endian order, from its IEEE 754 bit pattern (written out by hand below). */
const f32 = (bits: number) => [bits & 0xff, (bits >>> 8) & 0xff, (bits >>> 16) & 0xff, bits >>> 24];

/** A safetensors file assembled as the format's README describes it, independent of the encoder. */
function specFile(headerJson: string, data: number[]): Uint8Array {
  const header = Buffer.from(headerJson, 'utf8');
  const padded = Math.ceil(header.length / 8) * 8;
  const n = BigInt(padded);
  const len = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
  return new Uint8Array([...len, ...header, ...Array(padded - header.length).fill(0x20), ...data]);
}

describe('tensor files in the safetensors layout', () => {
  const tensors: HostTensors = new Map([
    ['head.w', { shape: [2], data: new Float32Array([1, -2]) }],
    ['b', { shape: [1, 1], data: new Float32Array([0.5]) }],
  ]);

  it('writes the layout of the spec: u64 LE header size, JSON space-padded to 8 bytes, contiguous F32 data', () => {
    const bytes = encodeTensorFile({ x: 1 }, tensors);
    const header =
      '{"__metadata__":{"protoatlas":"{\\"x\\":1}"},' +
      '"head.w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"b":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]}}';
    // 1.0 = 0x3f800000, -2.0 = 0xc0000000, 0.5 = 0x3f000000
    const expected = specFile(header, [...f32(0x3f800000), ...f32(0xc0000000), ...f32(0x3f000000)]);
    expect(Array.from(bytes)).toEqual(Array.from(expected));
    // The properties the spec states, read straight from the bytes.
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    expect(bytes[8]).toBe(0x7b); // '{'
    expect(bytes[8 + n - 1]).toBe(0x20); // padding is spaces
    expect(bytes.length).toBe(8 + n + 12);
  });

  it('round-trips through a file, bit for bit (NaN payloads, -0, subnormals, empty tensors)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-st-'));
    const odd = new Float32Array(new Uint32Array([0x7fc00001, 0x80000000, 0x00000001, 0x7f7fffff, 0xff800000]).buffer);
    const big = Float32Array.from({ length: 10_001 }, (_, i) => Math.sin(i) * 1e3);
    const t: HostTensors = new Map([
      ['odd', { shape: [5], data: odd }],
      ['empty', { shape: [0, 3], data: new Float32Array(0) }],
      ['big', { shape: [73, 137], data: big }],
    ]);
    const meta = { stage: 'joint', epoch: 3, nested: { list: [1, 2], text: 'é "quoted"' } };
    await saveTensorFile(join(dir, 'w.bin'), meta, t);
    const back = await loadTensorFile<typeof meta>(join(dir, 'w.bin'));
    expect(back.meta).toEqual(meta);
    expect([...back.tensors.keys()]).toEqual(['odd', 'empty', 'big']);
    for (const [name, v] of t) {
      const got = back.tensors.get(name)!;
      expect(got.shape, name).toEqual(v.shape);
      expect(Array.from(new Uint32Array(got.data.slice().buffer)), name).toEqual(
        Array.from(new Uint32Array(v.data.slice().buffer)),
      );
    }
    const raw = await readFile(join(dir, 'w.bin'));
    const n = Number(raw.readBigUInt64LE(0));
    const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8'));
    expect(header.big.data_offsets).toEqual([20, 20 + 10_001 * 4]);
    expect(JSON.parse(header.__metadata__[META_KEY])).toEqual(meta);
  });

  it('reads files from other writers: any header order, no metadata; tensors come in data order', () => {
    const header =
      '{"second":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},' +
      '"first":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const file = decodeTensorFile(specFile(header, [...f32(0x40000000), ...f32(0x40400000)]));
    expect(file.meta).toBeUndefined();
    expect([...file.tensors.keys()]).toEqual(['first', 'second']);
    expect(Array.from(file.tensors.get('first')!.data)).toEqual([2]);
    expect(Array.from(file.tensors.get('second')!.data)).toEqual([3]);
  });

  it('still reads the earlier PATLAS01 layout', () => {
    const json = Buffer.from(
      JSON.stringify({ meta: { v: 1 }, tensors: [{ name: 'a', shape: [2], offset: 0, length: 2 }] }),
    );
    const headerLen = Math.ceil((json.length + 12) / 4) * 4 - 12;
    const bytes = new Uint8Array(12 + headerLen + 8);
    bytes.set(Buffer.from('PATLAS01'), 0);
    new DataView(bytes.buffer).setUint32(8, headerLen, true);
    bytes.set(json, 12);
    bytes.fill(0x20, 12 + json.length, 12 + headerLen);
    bytes.set([...f32(0x3f800000), ...f32(0x40000000)], 12 + headerLen);
    const file = decodeTensorFile<{ v: number }>(bytes);
    expect(file.meta).toEqual({ v: 1 });
    expect(Array.from(file.tensors.get('a')!.data)).toEqual([1, 2]);
  });

  it('refuses broken files with messages that name the file and the problem', async () => {
    const good = encodeTensorFile({}, tensors);
    expect(() => decodeTensorFile(good.subarray(0, 5), 'x.ckpt')).toThrow(/x\.ckpt is not a safetensors file: 5 bytes/);
    expect(() => decodeTensorFile(good.subarray(0, 40), 'x.ckpt')).toThrow(
      /header length \d+ does not fit in its 40 bytes/,
    );
    expect(() => decodeTensorFile(good.subarray(0, good.length - 2), 'x.ckpt')).toThrow(
      /tensor b has data_offsets \[8,12\].*truncated/,
    );
    const f16 = specFile('{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0]);
    expect(() => decodeTensorFile(f16, 'y')).toThrow(/tensor h has dtype F16; ProtoAtlas reads F32 tensors only/);
    expect(() => decodeTensorFile(specFile('{"a":', []), 'z')).toThrow(
      /z is not a safetensors file: its header is not JSON/,
    );
    expect(() => encodeTensorFile({}, new Map([['__metadata__', { shape: [1], data: new Float32Array(1) }]]))).toThrow(
      /reserved/,
    );
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-st-'));
    await writeFile(
      join(dir, 'foreign.ckpt'),
      specFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(0)),
    );
    await expect(loadCheckpoint(join(dir, 'foreign.ckpt'))).rejects.toThrow(
      /foreign\.ckpt: no ProtoAtlas checkpoint metadata/,
    );
  });
});

/**
 * Tensor files (checkpoints, a model's weights.bin) in the safetensors layout,
 * so Python tools read them (safetensors.torch.load_file):
 *   u64 LE header length N | N bytes of JSON header, padded with spaces so the
 *   data starts 8-byte aligned | raw little-endian tensor data.
 * The header maps each tensor name to { dtype: "F32", shape, data_offsets }
 * (offsets relative to the data, contiguous, in write order); ProtoAtlas's own
 * metadata is one JSON string under __metadata__["protoatlas"], since
 * safetensors metadata values are strings. Files of the earlier ProtoAtlas
 * layout (magic "PATLAS01") are still read. Written atomically.
 */
import { readFile } from 'node:fs/promises';
import type { HostTensors } from './host-tensors.ts';
import { writeFileAtomic } from './atomic.ts';

/** The __metadata__ key holding ProtoAtlas's metadata (a JSON string). */
export const META_KEY = 'protoatlas';
const LEGACY_MAGIC = 'PATLAS01';
/** Header length cap (as in the reference reader): a larger value means the file is not safetensors. */
const MAX_HEADER = 100_000_000;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export interface TensorFile<M> {
  meta: M;
  tensors: HostTensors;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export function encodeTensorFile<M>(meta: M, tensors: HostTensors): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { [META_KEY]: JSON.stringify(meta) } };
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new Error('a tensor cannot be named "__metadata__" (reserved by safetensors)');
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) {
      throw new Error(`tensor ${name}: shape ${JSON.stringify(t.shape)} needs ${n} values, has ${t.data.length}`);
    }
    const entry: HeaderEntry = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + n * 4] };
    header[name] = entry;
    offset += n * 4;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let at = 8 + headerLen;
  for (const t of tensors.values()) {
    if (LITTLE_ENDIAN_HOST) out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    else for (let i = 0; i < t.data.length; i++) view.setFloat32(at + i * 4, t.data[i], true);
    at += t.data.byteLength;
  }
  return out;
}

export function decodeTensorFile<M>(bytes: Uint8Array, source = 'tensor file'): TensorFile<M> {
  if (new TextDecoder().decode(bytes.subarray(0, 8)) === LEGACY_MAGIC) return decodeLegacy<M>(bytes, source);
  const notOurs = `${source} is not a safetensors file`;
  if (bytes.length < 8) {
    throw new Error(`${notOurs}: ${bytes.length} bytes, shorter than the 8-byte header length; was it truncated?`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > MAX_HEADER || 8 + headerLen > bytes.length) {
    const why = 'was it truncated or written by another tool?';
    throw new Error(`${notOurs}: header length ${headerLen} does not fit in its ${bytes.length} bytes; ${why}`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${notOurs}: its header is not JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + headerLen;
  const dataBytes = bytes.length - dataStart;
  const entries: [string, HeaderEntry][] = [];
  let meta: unknown;
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      const raw = (value as Record<string, unknown> | null)?.[META_KEY];
      if (typeof raw === 'string') meta = JSON.parse(raw);
      continue;
    }
    const e = value as HeaderEntry;
    if (e?.dtype !== 'F32') {
      throw new Error(`${source}: tensor ${name} has dtype ${String(e?.dtype)}; ProtoAtlas reads F32 tensors only`);
    }
    const [begin, end] = e.data_offsets ?? [];
    const n = (e.shape ?? []).reduce((a, b) => a * b, 1);
    const fits =
      Number.isInteger(begin) && Number.isInteger(end) && begin % 4 === 0 && begin <= end && end <= dataBytes;
    if (!fits || end - begin !== n * 4) {
      const where = `data_offsets ${JSON.stringify(e.data_offsets)} for shape ${JSON.stringify(e.shape)}`;
      throw new Error(`${source}: tensor ${name} has ${where} in ${dataBytes} data bytes; is the file truncated?`);
    }
    entries.push([name, e]);
  }
  // One aligned copy of the data; tensors are views into it, in file order.
  entries.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  const floats = readFloats(bytes, dataStart, dataBytes >> 2);
  const tensors: HostTensors = new Map();
  for (const [name, e] of entries) {
    tensors.set(name, { shape: e.shape, data: floats.subarray(e.data_offsets[0] / 4, e.data_offsets[1] / 4) });
  }
  return { meta: meta as M, tensors };
}

/** Copies `count` little-endian floats (bytes copied as they are on little-endian hosts, so NaN payloads survive). */
function readFloats(bytes: Uint8Array, start: number, count: number): Float32Array {
  if (LITTLE_ENDIAN_HOST) return new Float32Array(bytes.slice(start, start + count * 4).buffer);
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset + start, count * 4);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** The earlier layout: "PATLAS01" | u32 LE header length | JSON { meta, tensors } | f32 data. */
function decodeLegacy<M>(bytes: Uint8Array, source: string): TensorFile<M> {
  if (bytes.length < 12) throw new Error(`${source} is truncated: ${bytes.length} bytes`);
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLen))) as {
    meta: M;
    tensors: { name: string; shape: number[]; offset: number; length: number }[];
  };
  const dataStart = 12 + headerLen;
  const total = header.tensors.reduce((a, e) => a + e.length, 0);
  if (bytes.length < dataStart + total * 4)
    throw new Error(`${source} is truncated: expected ${dataStart + total * 4} bytes, found ${bytes.length}`);
  const floats = readFloats(bytes, dataStart, total);
  const tensors: HostTensors = new Map();
  for (const e of header.tensors)
    tensors.set(e.name, { shape: e.shape, data: floats.subarray(e.offset, e.offset + e.length) });
  return { meta: header.meta, tensors };
}

export async function saveTensorFile<M>(path: string, meta: M, tensors: HostTensors): Promise<void> {
  await writeFileAtomic(path, encodeTensorFile(meta, tensors));
}

export async function loadTensorFile<M>(path: string): Promise<TensorFile<M>> {
  return decodeTensorFile<M>(new Uint8Array(await readFile(path)), path);
}

import { readFile } from 'node:fs/promises';
import type { HostTensors } from '../head/tensors.ts';
import { writeFileAtomic } from './atomic.ts';

/**
 * A self-describing tensor file: 8 magic bytes, a u32 JSON header length, the
 * JSON header (tensor names, shapes, offsets, plus free-form metadata), then
 * float32 data. Readable without any ML runtime; written atomically.
 */
const MAGIC = 'PATLAS01';

export interface TensorFile<M> {
  meta: M;
  tensors: HostTensors;
}

export function encodeTensorFile<M>(meta: M, tensors: HostTensors): Uint8Array {
  const entries: { name: string; shape: number[]; offset: number; length: number }[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    entries.push({ name, shape: t.shape, offset, length: t.data.length });
    offset += t.data.length;
  }
  const header = new TextEncoder().encode(JSON.stringify({ meta, tensors: entries }));
  // Pad the header so float data starts 4-byte aligned.
  const headerLen = Math.ceil((header.length + 12) / 4) * 4 - 12;
  const out = new Uint8Array(12 + headerLen + offset * 4);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, headerLen, true);
  out.set(header, 12);
  out.fill(0x20, 12 + header.length, 12 + headerLen);
  const floats = new Float32Array(out.buffer, 12 + headerLen, offset);
  for (const e of entries) floats.set(tensors.get(e.name)!.data, e.offset);
  return out;
}

export function decodeTensorFile<M>(bytes: Uint8Array, source = 'tensor file'): TensorFile<M> {
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw new Error(`${source} is not a ProtoAtlas tensor file (bad magic); was it truncated or written by another tool?`);
  }
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLen))) as {
    meta: M;
    tensors: { name: string; shape: number[]; offset: number; length: number }[];
  };
  const dataStart = 12 + headerLen;
  const total = header.tensors.reduce((a, e) => a + e.length, 0);
  if (bytes.length < dataStart + total * 4) throw new Error(`${source} is truncated: expected ${dataStart + total * 4} bytes, found ${bytes.length}`);
  const copy = bytes.slice(dataStart, dataStart + total * 4);
  const floats = new Float32Array(copy.buffer, 0, total);
  const tensors: HostTensors = new Map();
  for (const e of header.tensors) tensors.set(e.name, { shape: e.shape, data: floats.subarray(e.offset, e.offset + e.length) });
  return { meta: header.meta, tensors };
}

export async function saveTensorFile<M>(path: string, meta: M, tensors: HostTensors): Promise<void> {
  await writeFileAtomic(path, encodeTensorFile(meta, tensors));
}

export async function loadTensorFile<M>(path: string): Promise<TensorFile<M>> {
  return decodeTensorFile<M>(new Uint8Array(await readFile(path)), path);
}

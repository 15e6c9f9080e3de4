/**
 * On-disk format of cached feature maps (whole stores and resumable chunks):
 *   8 bytes magic "PAFEAT01" | uint32 LE header length | JSON header | zero padding
 *   to a 64-byte boundary | raw little-endian values (count * H * W * D elements).
 * Files are written atomically (core/atomic.ts), so a reader never sees a
 * half-written file; a file whose size does not match its header is ignored.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { writeFileAtomic } from '../core/atomic.ts';
import type { SkippedFile } from '../data/types.ts';
import { bytesPerElement, type FeatureEncoding } from './feature-store.ts';
import type { FeatureQuantization, FeatureShape } from './types.ts';

const MAGIC = 'PAFEAT01';
const ALIGN = 64;
/** Largest single read/write; fs calls are limited to 2 GiB. */
const IO_CHUNK = 1 << 30;

export interface FeatureFileHeader {
  /** Cache key the content belongs to. */
  key: string;
  /** First map index in the full store, and number of maps in this file. */
  start: number;
  count: number;
  /** Maps in the full store. */
  total: number;
  shape: FeatureShape;
  encoding: FeatureEncoding;
  quantization?: FeatureQuantization;
  /** Absolute indices (in [start, start + count)) of images that could not be decoded. */
  invalid: number[];
  /** Why each invalid image was skipped. */
  skipped: (SkippedFile & { index: number })[];
  backbone: string;
  createdAt: string;
}

export function dataBytes(h: Pick<FeatureFileHeader, 'count' | 'shape' | 'encoding'>): number {
  return h.count * h.shape[0] * h.shape[1] * h.shape[2] * bytesPerElement(h.encoding);
}

/** Writes header + data atomically and durably. */
export async function writeFeatureFile(path: string, header: FeatureFileHeader, data: Uint8Array): Promise<void> {
  if (data.byteLength !== dataBytes(header))
    throw new Error(`writeFeatureFile: ${data.byteLength} data bytes, header says ${dataBytes(header)}`);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headLen = 12 + json.length;
  const padded = Math.ceil(headLen / ALIGN) * ALIGN;
  const head = Buffer.alloc(padded);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(json.length, 8);
  json.copy(head, 12);
  await writeFileAtomic(path, [head, data]);
}

/** Reads a file's header; undefined when the file is missing, truncated or not a feature file. */
export async function readFeatureHeader(
  path: string,
): Promise<{ header: FeatureFileHeader; dataOffset: number } | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = (await fh.stat()).size;
    const pre = Buffer.alloc(12);
    if ((await fh.read(pre, 0, 12, 0)).bytesRead !== 12 || pre.toString('latin1', 0, 8) !== MAGIC) return undefined;
    const len = pre.readUInt32LE(8);
    if (12 + len > size) return undefined;
    const json = Buffer.alloc(len);
    await fh.read(json, 0, len, 12);
    const header = JSON.parse(json.toString('utf8')) as FeatureFileHeader;
    const dataOffset = Math.ceil((12 + len) / ALIGN) * ALIGN;
    if (size !== dataOffset + dataBytes(header)) return undefined;
    return { header, dataOffset };
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

/** Reads a file's data into `dst` (exactly dataBytes(header) bytes long). */
export async function readFeatureData(path: string, dataOffset: number, dst: Uint8Array): Promise<void> {
  const fh = await open(path, 'r');
  try {
    for (let done = 0; done < dst.byteLength; ) {
      const len = Math.min(IO_CHUNK, dst.byteLength - done);
      const { bytesRead } = await fh.read(dst, done, len, dataOffset + done);
      if (bytesRead === 0) throw new Error(`feature file ${path} ended early`);
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

/** Byte view of a typed array (no copy). */
export function asBytes(a: Uint8Array | Uint16Array | Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

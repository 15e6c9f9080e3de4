/**
 * N feature maps of shape [H, W, D] in one compact buffer. Quantised backbones
 * store their exact uint8 values (4x smaller than float32, no loss); float
 * backbones store float16 (default, 2x smaller) or float32.
 */
import { decodeFloat16, encodeFloat16 } from './float16.ts';
import type { FeatureQuantization, FeatureShape } from './types.ts';

export type FeatureEncoding = 'uint8' | 'float16' | 'float32';

export interface FeatureStore {
  readonly n: number;
  readonly shape: FeatureShape;
  readonly encoding: FeatureEncoding;
  /** Set for 'uint8': value = (q - zeroPoint) * scale. */
  readonly quantization?: FeatureQuantization;
  /** The backing buffer, n * H * W * D elements of the encoding. */
  readonly data: Uint8Array | Uint16Array | Float32Array;
  /** Feature map i as float32 [H, W, D] (written into `out` when given). */
  get(i: number, out?: Float32Array): Float32Array;
  /** Feature maps of `indices`, concatenated: [indices.length, H, W, D]. */
  batch(indices: readonly number[], out?: Float32Array): Float32Array;
  /** Stores float features for map i. */
  set(i: number, features: Float32Array): void;
  /** Stores raw 8-bit features for map i ('uint8' stores only). */
  setQuantized(i: number, q: Uint8Array): void;
}

export interface FeatureStoreSpec {
  n: number;
  shape: FeatureShape;
  encoding: FeatureEncoding;
  quantization?: FeatureQuantization;
}

export function bytesPerElement(encoding: FeatureEncoding): number {
  return encoding === 'uint8' ? 1 : encoding === 'float16' ? 2 : 4;
}

/** A store over `data` (e.g. loaded from a cache file), or a zero-filled new one. */
export function createFeatureStore(
  spec: FeatureStoreSpec,
  data?: Uint8Array | Uint16Array | Float32Array,
): FeatureStore {
  const { n, shape, encoding, quantization } = spec;
  const size = shape[0] * shape[1] * shape[2];
  const total = n * size;
  if (encoding === 'uint8' && !quantization) throw new Error('FeatureStore: uint8 encoding needs scale and zero point');
  const buffer = data ?? allocateFeatureData(encoding, total);
  if (buffer.length !== total)
    throw new Error(`FeatureStore: buffer holds ${buffer.length} values, expected ${n}x${shape.join('x')} = ${total}`);
  checkType(encoding, buffer);

  // uint8 → float via a 256-entry table: exact and fast.
  const lut = new Float32Array(256);
  if (quantization) for (let q = 0; q < 256; q++) lut[q] = (q - quantization.zeroPoint) * quantization.scale;

  const checkIndex = (i: number): void => {
    if (!Number.isInteger(i) || i < 0 || i >= n)
      throw new RangeError(`FeatureStore: index ${i} out of range 0..${n - 1}`);
  };
  const readInto = (i: number, out: Float32Array, at: number): void => {
    checkIndex(i);
    const start = i * size;
    const dst = out.subarray(at, at + size);
    if (encoding === 'uint8') {
      const src = (buffer as Uint8Array).subarray(start, start + size);
      for (let j = 0; j < size; j++) dst[j] = lut[src[j]];
    } else if (encoding === 'float16') {
      decodeFloat16((buffer as Uint16Array).subarray(start, start + size), dst);
    } else {
      dst.set((buffer as Float32Array).subarray(start, start + size));
    }
  };

  return {
    n,
    shape,
    encoding,
    quantization,
    data: buffer,
    get(i, out) {
      const dst = out ?? new Float32Array(size);
      if (dst.length < size) throw new Error(`FeatureStore.get: out has ${dst.length} floats, needs ${size}`);
      readInto(i, dst, 0);
      return dst;
    },
    batch(indices, out) {
      const dst = out ?? new Float32Array(indices.length * size);
      if (dst.length < indices.length * size)
        throw new Error(`FeatureStore.batch: out has ${dst.length} floats, needs ${indices.length * size}`);
      indices.forEach((idx, k) => readInto(idx, dst, k * size));
      return dst;
    },
    set(i, features) {
      checkIndex(i);
      if (features.length !== size)
        throw new Error(`FeatureStore.set: got ${features.length} floats, expected ${size}`);
      const start = i * size;
      if (encoding === 'float32') (buffer as Float32Array).set(features, start);
      else if (encoding === 'float16') encodeFloat16(features, (buffer as Uint16Array).subarray(start, start + size));
      else {
        // Float input into a quantised store: requantise (exact when the floats came from this quantisation).
        const q = quantization!;
        const dst = (buffer as Uint8Array).subarray(start, start + size);
        for (let j = 0; j < size; j++)
          dst[j] = Math.min(255, Math.max(0, Math.round(features[j] / q.scale + q.zeroPoint)));
      }
    },
    setQuantized(i, q) {
      checkIndex(i);
      if (encoding !== 'uint8') throw new Error(`FeatureStore.setQuantized: store encoding is ${encoding}`);
      if (q.length !== size) throw new Error(`FeatureStore.setQuantized: got ${q.length} values, expected ${size}`);
      (buffer as Uint8Array).set(q, i * size);
    },
  };
}

/**
 * A zero-filled buffer for `total` values, in shared memory: gradient worker
 * threads then read the same features without a copy per thread.
 */
export function allocateFeatureData(encoding: FeatureEncoding, total: number): Uint8Array | Uint16Array | Float32Array {
  const shared = new SharedArrayBuffer(total * bytesPerElement(encoding));
  return encoding === 'uint8'
    ? new Uint8Array(shared)
    : encoding === 'float16'
      ? new Uint16Array(shared)
      : new Float32Array(shared);
}

function checkType(encoding: FeatureEncoding, data: Uint8Array | Uint16Array | Float32Array): void {
  const ok =
    encoding === 'uint8'
      ? data instanceof Uint8Array
      : encoding === 'float16'
        ? data instanceof Uint16Array
        : data instanceof Float32Array;
  if (!ok) throw new Error(`FeatureStore: ${data.constructor.name} does not match encoding ${encoding}`);
}

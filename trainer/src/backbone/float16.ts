/**
 * float32 <-> IEEE half conversion over Uint16Array storage. Uses the native
 * Float16Array when the runtime has it (Node 24), else a table-driven fallback.
 */

interface Float16ArrayLike {
  set(src: ArrayLike<number>): void;
  [i: number]: number;
}
type Float16Ctor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => Float16ArrayLike;
const NativeFloat16 = (globalThis as unknown as { Float16Array?: Float16Ctor }).Float16Array;

/** dst[i] = half(src[i]), round to nearest even. */
export function encodeFloat16(src: Float32Array, dst: Uint16Array): void {
  if (src.length !== dst.length) throw new Error('encodeFloat16: length mismatch');
  if (NativeFloat16) {
    new NativeFloat16(dst.buffer, dst.byteOffset, dst.length).set(src);
    return;
  }
  encodeFloat16Js(src, dst);
}

/** Portable encoder (runtimes without Float16Array). */
export function encodeFloat16Js(src: Float32Array, dst: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = halfBits(src[i]);
}

/** dst[i] = float(src[i]). */
export function decodeFloat16(src: Uint16Array, dst: Float32Array): void {
  if (src.length !== dst.length) throw new Error('decodeFloat16: length mismatch');
  if (NativeFloat16) {
    const view = new NativeFloat16(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < src.length; i++) dst[i] = view[i];
    return;
  }
  decodeFloat16Js(src, dst);
}

/** Portable decoder (runtimes without Float16Array). */
export function decodeFloat16Js(src: Uint16Array, dst: Float32Array): void {
  const lut = decodeTable();
  for (let i = 0; i < src.length; i++) dst[i] = lut[src[i]];
}

let table: Float32Array | undefined;
function decodeTable(): Float32Array {
  if (table) return table;
  table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24;
    else if (exp === 31) table[h] = frac ? NaN : sign * Infinity;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return table;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function halfBits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

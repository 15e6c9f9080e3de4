import { describe, expect, it } from 'vitest';
import { decodeFloat16, decodeFloat16Js, encodeFloat16, encodeFloat16Js } from '../../trainer/src/backbone/float16.ts';
import { createFeatureStore } from '../../trainer/src/backbone/feature-store.ts';

describe('FeatureStore', () => {
  const shape: [number, number, number] = [2, 2, 3];
  const size = 12;
  const maps = (n: number): Float32Array[] =>
    Array.from({ length: n }, (_, i) => Float32Array.from({ length: size }, (_, j) => Math.sin(i * 13 + j) * 3));

  it('stores uint8 exactly and dequantises with scale and zero point', () => {
    const store = createFeatureStore({ n: 3, shape, encoding: 'uint8', quantization: { scale: 0.5, zeroPoint: 10 } });
    const q = Uint8Array.from({ length: size }, (_, j) => j * 20);
    store.setQuantized(1, q);
    expect(Array.from(store.get(1))).toEqual(Array.from(q, (v) => (v - 10) * 0.5));
    expect(Array.from(store.get(0))).toEqual(new Array(size).fill(-5));
    // Floats that came from this quantisation requantise exactly.
    store.set(2, store.get(1));
    expect(Array.from((store.data as Uint8Array).subarray(2 * size))).toEqual(Array.from(q));
    expect(store.data.byteLength).toBe(3 * size);
  });

  it('keeps float32 exactly and float16 within half precision', () => {
    const m = maps(4);
    const f32 = createFeatureStore({ n: 4, shape, encoding: 'float32' });
    const f16 = createFeatureStore({ n: 4, shape, encoding: 'float16' });
    m.forEach((x, i) => {
      f32.set(i, x);
      f16.set(i, x);
    });
    expect(Array.from(f32.get(2))).toEqual(Array.from(m[2]));
    const h = f16.get(2);
    for (let j = 0; j < size; j++)
      expect(Math.abs(h[j] - m[2][j])).toBeLessThanOrEqual(Math.abs(m[2][j]) * 2 ** -11 + 1e-7);
    expect(f16.data.byteLength).toBe(4 * size * 2);
  });

  it('gathers batches in index order, into a given buffer', () => {
    const m = maps(5);
    const s = createFeatureStore({ n: 5, shape, encoding: 'float32' });
    m.forEach((x, i) => s.set(i, x));
    const out = new Float32Array(3 * size);
    const b = s.batch([4, 0, 4], out);
    expect(b).toBe(out);
    expect(Array.from(b.subarray(0, size))).toEqual(Array.from(m[4]));
    expect(Array.from(b.subarray(size, 2 * size))).toEqual(Array.from(m[0]));
    expect(Array.from(b.subarray(2 * size))).toEqual(Array.from(m[4]));
  });

  it('checks indices, sizes and buffers', () => {
    const s = createFeatureStore({ n: 2, shape, encoding: 'float32' });
    expect(() => s.get(2)).toThrow(RangeError);
    expect(() => s.set(0, new Float32Array(3))).toThrow(/expected 12/);
    expect(() => s.setQuantized(0, new Uint8Array(size))).toThrow(/float32/);
    expect(() => createFeatureStore({ n: 2, shape, encoding: 'uint8' })).toThrow(/scale/);
    expect(() => createFeatureStore({ n: 2, shape, encoding: 'float32' }, new Float32Array(5))).toThrow(/expected/);
  });
});

describe('float16', () => {
  it('round-trips representable values and rounds to nearest even', () => {
    const src = Float32Array.from([
      0,
      -0,
      1,
      -2.5,
      65504,
      1 / 1024,
      2 ** -24,
      1e-9,
      70000,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      NaN,
    ]);
    const bits = new Uint16Array(src.length);
    encodeFloat16(src, bits);
    const back = new Float32Array(src.length);
    decodeFloat16(bits, back);
    expect(Array.from(back.subarray(0, 7))).toEqual([0, -0, 1, -2.5, 65504, 1 / 1024, 2 ** -24]);
    expect(back[7]).toBe(0); // underflow
    expect(back[8]).toBe(Infinity); // overflow
    expect(back[9]).toBe(1); // tie → even
    expect(back[10]).toBe(1 + 2 * 2 ** -10 * 1); // tie → even (up)
    expect(Number.isNaN(back[11])).toBe(true);
  });

  // IEEE 754 binary16 by its definition, written independently of float16.ts.
  const refDecode = (h: number): number => {
    const sign = h >= 0x8000 ? -1 : 1;
    const e = (h >> 10) & 31;
    const f = h % 1024;
    if (e === 31) return f ? NaN : sign * Infinity;
    return e === 0 ? sign * (f / 1024) * 2 ** -14 : sign * (1 + f / 1024) * 2 ** (e - 15);
  };
  /** Nearest half by bisection over the (monotonic) positive finite codes, ties to the even code. */
  const refEncode = (x: number): number => {
    if (Number.isNaN(x)) return 0x7e00;
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const a = Math.abs(x);
    if (a >= 65520) return sign | 0x7c00; // halfway between 65504 and 2^16 rounds to infinity
    let lo = 0;
    let hi = 0x7bff;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (refDecode(mid) <= a) lo = mid;
      else hi = mid;
    }
    const [dl, dh] = [a - refDecode(lo), refDecode(hi) - a];
    return sign | (dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi);
  };
  const f16round = (Math as unknown as { f16round?: (x: number) => number }).f16round;

  it('portable path agrees with IEEE half precision (independent reference), every code and many values', () => {
    const every = Uint16Array.from({ length: 65536 }, (_, h) => h);
    const decoded = new Float32Array(65536);
    decodeFloat16Js(every, decoded);
    for (let h = 0; h < 65536; h++) {
      const want = refDecode(h);
      if (Number.isNaN(want)) expect(Number.isNaN(decoded[h]), `code ${h}`).toBe(true);
      else if (decoded[h] !== want) expect(decoded[h], `code ${h}`).toBe(want);
    }
    // Random magnitudes over the whole range, exact ties, subnormals, overflow edges.
    const values = Array.from({ length: 20000 }, (_, i) => Math.sin(i * 0.77) * 10 ** ((i % 14) - 8));
    for (let h = 0; h < 0x7c00; h += 97) values.push((refDecode(h) + refDecode(h + 1)) / 2, -refDecode(h));
    values.push(65504, 65519.99, 65520, 1e6, -1e6, 2 ** -25, 2 ** -25 + 2 ** -40, 3 * 2 ** -26, 0, -0);
    const src = Float32Array.from(values);
    const bits = new Uint16Array(src.length);
    encodeFloat16Js(src, bits);
    let wrong = 0;
    src.forEach((x, i) => {
      if (bits[i] !== refEncode(x) && wrong++ < 5) expect(bits[i], `encode ${x}`).toBe(refEncode(x));
    });
    expect(wrong).toBe(0);
    // Where the runtime has Math.f16round, it is a third opinion.
    if (f16round) {
      const back = new Float32Array(src.length);
      decodeFloat16Js(bits, back);
      src.forEach((x, i) => expect(Object.is(back[i], f16round(x)), `f16round ${x}`).toBe(true));
    }
  });

  const hasNative = 'Float16Array' in globalThis;
  const noNative = hasNative ? '' : ' (skipped: this runtime has no Float16Array)';
  it.skipIf(!hasNative)(`portable fallback agrees with the native conversion bit for bit${noNative}`, () => {
    const src = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i * 0.77) * 10 ** ((i % 14) - 8));
    const a = new Uint16Array(src.length);
    const b = new Uint16Array(src.length);
    encodeFloat16(src, a);
    encodeFloat16Js(src, b);
    expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer))).toBe(0);
    const fa = new Float32Array(src.length);
    const fb = new Float32Array(src.length);
    decodeFloat16(a, fa);
    decodeFloat16Js(a, fb);
    expect(Buffer.compare(Buffer.from(fa.buffer), Buffer.from(fb.buffer))).toBe(0);
  });
});

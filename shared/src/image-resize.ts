/**
 * Image resizing for model input, in plain JS so every runtime (Node, Workers,
 * the browser) turns a photo into the same pixels. It follows what the trainer's
 * sharp call does (`resize(S, S, { fit: 'fill' })`, libvips' default lanczos3):
 * each axis is first box-averaged by floor(factor / 2) (libvips' "gap" 2), then
 * reduced with a lanczos3 kernel widened by the remaining factor, pixel centres
 * aligned. Alpha is flattened on white first, as the trainer does.
 *
 * On PNG input this lands within half a grey level of sharp on average. sharp
 * decodes JPEG and WebP at a reduced scale when it can ("shrink-on-load"), so
 * those differ by a few levels; only a trainer that resized with this function
 * too would make training and serving bit-identical.
 */

export interface PixelSource {
  /** Interleaved 8-bit pixels, RGB or RGBA. */
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 3 | 4;
}

export interface ResizeOptions {
  /** Colour under transparent pixels, 0-255 RGB. Default white. */
  background?: readonly [number, number, number];
}

function lanczos3(x: number): number {
  if (x === 0) return 1;
  if (x <= -3 || x >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

/** Per output pixel: first input index, tap count and normalised weights. */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  weights: Float64Array;
  /** Offset of each output's weights in `weights`. */
  offset: Int32Array;
}

/** Lanczos3 taps, widened by the factor when reducing. */
function lanczosTaps(inSize: number, outSize: number): Taps {
  const factor = inSize / outSize;
  const scale = Math.max(1, factor);
  const support = 3 * scale;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const offset = new Int32Array(outSize);
  const all: number[] = [];
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * factor;
    const lo = Math.floor(centre - support);
    const hi = Math.ceil(centre + support);
    const w: number[] = [];
    let sum = 0;
    for (let i = lo; i <= hi; i++) {
      const v = lanczos3((i + 0.5 - centre) / scale);
      w.push(v);
      sum += v;
    }
    start[o] = lo;
    count[o] = w.length;
    offset[o] = all.length;
    for (const v of w) all.push(v / sum);
  }
  return { start, count, weights: Float64Array.from(all), offset };
}

/** libvips' integer pre-shrink for a reduction factor (1 = none). */
export function boxShrinkFactor(inSize: number, outSize: number): number {
  return Math.max(1, Math.floor(inSize / outSize / 2));
}

/**
 * Box-average by integer factors (kx, ky) into float RGB, alpha flattened;
 * the last, partial block repeats the edge pixel.
 */
function boxShrink(
  src: PixelSource,
  kx: number,
  ky: number,
  bg: readonly [number, number, number],
): { data: Float32Array; width: number; height: number } {
  const { width: W, height: H, channels: ch, data } = src;
  const sw = Math.max(1, Math.round(W / kx));
  const sh = Math.max(1, Math.round(H / ky));
  const out = new Float32Array(sw * sh * 3);
  const norm = 1 / (kx * ky);
  const row = new Float64Array(sw * 3);
  for (let oy = 0; oy < sh; oy++) {
    row.fill(0);
    for (let dy = 0; dy < ky; dy++) {
      const y = Math.min(H - 1, oy * ky + dy);
      const base = y * W * ch;
      for (let ox = 0; ox < sw; ox++) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (let dx = 0; dx < kx; dx++) {
          const x = Math.min(W - 1, ox * kx + dx);
          const s = base + x * ch;
          if (ch === 4) {
            const a = data[s + 3] / 255;
            r += data[s] * a + bg[0] * (1 - a);
            g += data[s + 1] * a + bg[1] * (1 - a);
            b += data[s + 2] * a + bg[2] * (1 - a);
          } else {
            r += data[s];
            g += data[s + 1];
            b += data[s + 2];
          }
        }
        row[ox * 3] += r;
        row[ox * 3 + 1] += g;
        row[ox * 3 + 2] += b;
      }
    }
    const o = oy * sw * 3;
    for (let i = 0; i < sw * 3; i++) out[o + i] = row[i] * norm;
  }
  return { data: out, width: sw, height: sh };
}

/**
 * Stretch an image to outW x outH (ignoring aspect, as in training) and return
 * 8-bit RGB, row-major. Cost is one pass over the input plus a small filter.
 */
export function resizeStretch(src: PixelSource, outW: number, outH: number, opts: ResizeOptions = {}): Uint8Array {
  const { width: W, height: H } = src;
  if (W < 1 || H < 1 || outW < 1 || outH < 1)
    throw new Error(`resizeStretch: sizes must be positive (${W}x${H} -> ${outW}x${outH})`);
  if (src.data.length !== W * H * src.channels)
    throw new Error(`resizeStretch: ${src.data.length} values, expected ${W}x${H}x${src.channels}`);
  const bg = opts.background ?? [255, 255, 255];
  const shrunk = boxShrink(src, boxShrinkFactor(W, outW), boxShrinkFactor(H, outH), bg);
  const sw = shrunk.width;
  const sh = shrunk.height;
  const s = shrunk.data;
  // Horizontal pass: sh x outW.
  const tx = lanczosTaps(sw, outW);
  const tmp = new Float32Array(sh * outW * 3);
  for (let y = 0; y < sh; y++) {
    const rowBase = y * sw;
    for (let x = 0; x < outW; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      const n = tx.count[x];
      const w0 = tx.offset[x];
      const i0 = tx.start[x];
      for (let k = 0; k < n; k++) {
        const i = Math.min(sw - 1, Math.max(0, i0 + k));
        const w = tx.weights[w0 + k];
        const p = (rowBase + i) * 3;
        r += w * s[p];
        g += w * s[p + 1];
        b += w * s[p + 2];
      }
      const o = (y * outW + x) * 3;
      tmp[o] = r;
      tmp[o + 1] = g;
      tmp[o + 2] = b;
    }
  }
  // Vertical pass: outH x outW, rounded to bytes.
  const ty = lanczosTaps(sh, outH);
  const out = new Uint8Array(outW * outH * 3);
  for (let y = 0; y < outH; y++) {
    const n = ty.count[y];
    const w0 = ty.offset[y];
    const i0 = ty.start[y];
    for (let x = 0; x < outW; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < n; k++) {
        const i = Math.min(sh - 1, Math.max(0, i0 + k));
        const w = ty.weights[w0 + k];
        const p = (i * outW + x) * 3;
        r += w * tmp[p];
        g += w * tmp[p + 1];
        b += w * tmp[p + 2];
      }
      const o = (y * outW + x) * 3;
      out[o] = Math.min(255, Math.max(0, Math.round(r)));
      out[o + 1] = Math.min(255, Math.max(0, Math.round(g)));
      out[o + 2] = Math.min(255, Math.max(0, Math.round(b)));
    }
  }
  return out;
}

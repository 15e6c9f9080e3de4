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

/** Per output pixel: its taps' input indices (clamped to the edge) and normalised weights. */
interface Taps {
  count: Int32Array;
  /** Offset of each output's taps in `index` and `weights`. */
  offset: Int32Array;
  /** Input index of each tap, clamped to [0, inSize - 1] (the edge pixel repeats). */
  index: Int32Array;
  weights: Float64Array;
}

/** Lanczos3 taps, widened by the factor when reducing. */
function lanczosTaps(inSize: number, outSize: number): Taps {
  const factor = inSize / outSize;
  const scale = Math.max(1, factor);
  const support = 3 * scale;
  const count = new Int32Array(outSize);
  const offset = new Int32Array(outSize);
  // floor(c - s) .. ceil(c + s) spans at most 2 * ceil(s) + 2 indices.
  const most = outSize * (2 * Math.ceil(support) + 2);
  const index = new Int32Array(most);
  const weights = new Float64Array(most);
  let t = 0;
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * factor;
    const lo = Math.floor(centre - support);
    const hi = Math.ceil(centre + support);
    let sum = 0;
    for (let i = lo; i <= hi; i++) {
      const v = lanczos3((i + 0.5 - centre) / scale);
      index[t + i - lo] = Math.min(inSize - 1, Math.max(0, i));
      weights[t + i - lo] = v;
      sum += v;
    }
    // Taps past lanczos3's support weigh exactly 0 and add exactly nothing: they are dropped.
    let first = t;
    let end = t + hi - lo + 1;
    while (first < end - 1 && weights[first] === 0) first++;
    while (end - 1 > first && weights[end - 1] === 0) end--;
    for (let k = first; k < end; k++) weights[k] /= sum;
    count[o] = end - first;
    offset[o] = first;
    t = end;
  }
  return { count, offset, index, weights };
}

/** libvips' integer pre-shrink for a reduction factor (1 = none). */
export function boxShrinkFactor(inSize: number, outSize: number): number {
  return Math.max(1, Math.floor(inSize / outSize / 2));
}

/** Float RGB after the integer box pre-shrink (alpha already flattened). */
export interface BoxShrunk {
  data: Float32Array;
  width: number;
  height: number;
}

/**
 * Box-average by integer factors (kx, ky) into float RGB, alpha flattened;
 * the last, partial block repeats the edge pixel. Fed one input row at a time
 * (top to bottom), so a decoder can stream rows through it and never hold the
 * full-size image: only the shrunk result and one row of sums are kept.
 */
export class BoxShrinker {
  readonly width: number;
  readonly height: number;
  private readonly inW: number;
  private readonly inH: number;
  private readonly kx: number;
  private readonly ky: number;
  private readonly bg: readonly [number, number, number];
  private readonly out: Float32Array;
  private readonly sums: Float64Array;
  private next = 0;

  constructor(inW: number, inH: number, kx: number, ky: number, bg: readonly [number, number, number]) {
    this.inW = inW;
    this.inH = inH;
    this.kx = kx;
    this.ky = ky;
    this.bg = bg;
    this.width = Math.max(1, Math.round(inW / kx));
    this.height = Math.max(1, Math.round(inH / ky));
    this.out = new Float32Array(this.width * this.height * 3);
    this.sums = new Float64Array(this.width * 3);
  }

  /** Adds input row `y` (the rows must come in order): `data` holds its pixels from `offset`. */
  push(data: Uint8Array | Uint8ClampedArray, offset: number, channels: 3 | 4, y: number): void {
    if (y !== this.next) throw new Error(`BoxShrinker: row ${y} given, row ${this.next} expected`);
    this.next++;
    const { ky, inH, height } = this;
    // Rows past the last whole block are dropped; the last row fills a partial last block.
    const uses = y === inH - 1 ? Math.max(0, height * ky - y) : y < height * ky ? 1 : 0;
    for (let u = 0; u < uses; u++) {
      const vy = y + u;
      this.addRow(data, offset, channels);
      if (vy % ky === ky - 1) this.emit(Math.floor(vy / ky));
    }
  }

  private addRow(data: Uint8Array | Uint8ClampedArray, base: number, ch: 3 | 4): void {
    if (ch === 3) this.addRgbRow(data, base);
    else this.addRgbaRow(data, base);
  }

  /** Opaque pixels: integer sums, exact in any order. */
  private addRgbRow(data: Uint8Array | Uint8ClampedArray, base: number): void {
    const { inW: W, kx, width: sw, sums: row } = this;
    // Whole blocks first; a partial last block (W not a multiple of kx) repeats the edge pixel.
    const whole = Math.min(sw, Math.floor(W / kx));
    let s = base;
    let o = 0;
    for (let ox = 0; ox < whole; ox++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let dx = 0; dx < kx; dx++) {
        r += data[s];
        g += data[s + 1];
        b += data[s + 2];
        s += 3;
      }
      row[o] += r;
      row[o + 1] += g;
      row[o + 2] += b;
      o += 3;
    }
    for (let ox = whole; ox < sw; ox++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let dx = 0; dx < kx; dx++) {
        const p = base + Math.min(W - 1, ox * kx + dx) * 3;
        r += data[p];
        g += data[p + 1];
        b += data[p + 2];
      }
      row[ox * 3] += r;
      row[ox * 3 + 1] += g;
      row[ox * 3 + 2] += b;
    }
  }

  /** Alpha flattened on the background, pixel by pixel in the block's order (float sums). */
  private addRgbaRow(data: Uint8Array | Uint8ClampedArray, base: number): void {
    const { inW: W, kx, bg, width: sw, sums: row } = this;
    for (let ox = 0; ox < sw; ox++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let dx = 0; dx < kx; dx++) {
        const s = base + Math.min(W - 1, ox * kx + dx) * 4;
        const a = data[s + 3] / 255;
        r += data[s] * a + bg[0] * (1 - a);
        g += data[s + 1] * a + bg[1] * (1 - a);
        b += data[s + 2] * a + bg[2] * (1 - a);
      }
      row[ox * 3] += r;
      row[ox * 3 + 1] += g;
      row[ox * 3 + 2] += b;
    }
  }

  private emit(oy: number): void {
    const norm = 1 / (this.kx * this.ky);
    const o = oy * this.width * 3;
    const { out, sums } = this;
    for (let i = 0; i < sums.length; i++) out[o + i] = sums[i] * norm;
    sums.fill(0);
  }

  /** The shrunk image, once every input row is in. */
  result(): BoxShrunk {
    if (this.next !== this.inH) throw new Error(`BoxShrinker: ${this.next} of ${this.inH} rows given`);
    return { data: this.out, width: this.width, height: this.height };
  }
}

/** The integer pre-shrink of a resize from inW x inH to outW x outH, as a row-fed shrinker. */
export function boxShrinkerFor(
  inW: number,
  inH: number,
  outW: number,
  outH: number,
  opts: ResizeOptions = {},
): BoxShrinker {
  const bg = opts.background ?? [255, 255, 255];
  return new BoxShrinker(inW, inH, boxShrinkFactor(inW, outW), boxShrinkFactor(inH, outH), bg);
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
  if (src.channels === 3 && boxShrinkFactor(W, outW) === 1 && boxShrinkFactor(H, outH) === 1) {
    // No pre-shrink and nothing to flatten: the shrinker would copy the bytes as floats.
    return resizeShrunk({ data: new Float32Array(src.data), width: W, height: H }, outW, outH);
  }
  const shrinker = boxShrinkerFor(W, H, outW, outH, opts);
  const rowLength = W * src.channels;
  for (let y = 0; y < H; y++) shrinker.push(src.data, y * rowLength, src.channels, y);
  return resizeShrunk(shrinker.result(), outW, outH);
}

/**
 * The rest of resizeStretch after the box pre-shrink: lanczos3 to outW x outH,
 * 8-bit RGB. `shrunk` comes from a BoxShrinker made by boxShrinkerFor with the
 * same output size.
 */
export function resizeShrunk(shrunk: BoxShrunk, outW: number, outH: number): Uint8Array {
  const tmp = horizontalPass(shrunk.data, shrunk.width, shrunk.height, lanczosTaps(shrunk.width, outW));
  return verticalPass(tmp, outW, outH, lanczosTaps(shrunk.height, outH));
}

/**
 * Rows of w interleaved RGB floats filtered to taps.count.length columns (float32).
 * Each value adds its taps in order, in double precision, as a plain loop would.
 */
function horizontalPass(s: Float32Array, w: number, h: number, taps: Taps): Float32Array {
  const { count, offset, index, weights } = taps;
  const outW = count.length;
  const tmp = new Float32Array(h * outW * 3);
  const rowLen = w * 3;
  const outLen = outW * 3;
  let y = 0;
  // Two rows at a time share each tap's weight and index.
  for (; y + 1 < h; y += 2) {
    const a = y * rowLen;
    const b = a + rowLen;
    let o = y * outLen;
    for (let x = 0; x < outW; x++) {
      let r0 = 0;
      let g0 = 0;
      let b0 = 0;
      let r1 = 0;
      let g1 = 0;
      let b1 = 0;
      const end = offset[x] + count[x];
      for (let k = offset[x]; k < end; k++) {
        const wk = weights[k];
        const i = index[k] * 3;
        r0 += wk * s[a + i];
        g0 += wk * s[a + i + 1];
        b0 += wk * s[a + i + 2];
        r1 += wk * s[b + i];
        g1 += wk * s[b + i + 1];
        b1 += wk * s[b + i + 2];
      }
      tmp[o] = r0;
      tmp[o + 1] = g0;
      tmp[o + 2] = b0;
      tmp[o + outLen] = r1;
      tmp[o + outLen + 1] = g1;
      tmp[o + outLen + 2] = b1;
      o += 3;
    }
  }
  for (; y < h; y++) {
    const a = y * rowLen;
    let o = y * outLen;
    for (let x = 0; x < outW; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      const end = offset[x] + count[x];
      for (let k = offset[x]; k < end; k++) {
        const wk = weights[k];
        const i = a + index[k] * 3;
        r += wk * s[i];
        g += wk * s[i + 1];
        b += wk * s[i + 2];
      }
      tmp[o] = r;
      tmp[o + 1] = g;
      tmp[o + 2] = b;
      o += 3;
    }
  }
  return tmp;
}

/**
 * Columns of the horizontal pass's rows filtered to outH rows and rounded to
 * bytes. A whole output row is summed at once, tap by tap (contiguous reads);
 * each value still adds its taps in order, in double precision.
 */
function verticalPass(tmp: Float32Array, outW: number, outH: number, taps: Taps): Uint8Array {
  const { count, offset, index, weights } = taps;
  const rowLen = outW * 3;
  const acc = new Float64Array(rowLen);
  const out = new Uint8Array(outH * rowLen);
  for (let y = 0; y < outH; y++) {
    acc.fill(0);
    const end = offset[y] + count[y];
    let k = offset[y];
    // Two taps per sweep: the same two additions in the same order, one load and store of acc.
    for (; k + 1 < end; k += 2) {
      const w0 = weights[k];
      const w1 = weights[k + 1];
      const p0 = index[k] * rowLen;
      const p1 = index[k + 1] * rowLen;
      for (let j = 0; j < rowLen; j++) acc[j] = acc[j] + w0 * tmp[p0 + j] + w1 * tmp[p1 + j];
    }
    if (k < end) {
      const wk = weights[k];
      const p = index[k] * rowLen;
      for (let j = 0; j < rowLen; j++) acc[j] += wk * tmp[p + j];
    }
    roundRow(acc, out, y * rowLen);
  }
  return out;
}

/**
 * min(255, max(0, Math.round(a))) as bytes from `o`. Between 0.5 and 254.5,
 * a + 0.5 is exact or rounds without crossing an integer, so truncating it is
 * Math.round (ties up); below 0.5 (NaN included) it is 0.
 */
function roundRow(acc: Float64Array, out: Uint8Array, o: number): void {
  for (let j = 0; j < acc.length; j++) {
    const a = acc[j];
    out[o + j] = a >= 254.5 ? 255 : a >= 0.5 ? (a + 0.5) | 0 : 0;
  }
}

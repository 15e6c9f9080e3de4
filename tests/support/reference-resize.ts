/**
 * The model-input resize and EXIF turn as they were written before the fast
 * paths (shared/src/image-resize.ts, shared/src/exif.ts at f7d1ad1), kept
 * verbatim as the reference the fast code must equal value for value.
 */
import { orientedSize, storedPixel, type Orientation } from '@protoatlas/shared';
import type { BoxShrunk, PixelSource, ResizeOptions } from '@protoatlas/shared';

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
function boxShrinkFactor(inSize: number, outSize: number): number {
  return Math.max(1, Math.floor(inSize / outSize / 2));
}

/**
 * Box-average by integer factors (kx, ky) into float RGB, alpha flattened;
 * the last, partial block repeats the edge pixel. Fed one input row at a time
 * (top to bottom), so a decoder can stream rows through it and never hold the
 * full-size image: only the shrunk result and one row of sums are kept.
 */
class BoxShrinker {
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
    const { inW: W, kx, bg, width: sw, sums: row } = this;
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
function boxShrinkerFor(inW: number, inH: number, outW: number, outH: number, opts: ResizeOptions = {}): BoxShrinker {
  const bg = opts.background ?? [255, 255, 255];
  return new BoxShrinker(inW, inH, boxShrinkFactor(inW, outW), boxShrinkFactor(inH, outH), bg);
}

/**
 * Stretch an image to outW x outH (ignoring aspect, as in training) and return
 * 8-bit RGB, row-major. Cost is one pass over the input plus a small filter.
 */
export function referenceResizeStretch(
  src: PixelSource,
  outW: number,
  outH: number,
  opts: ResizeOptions = {},
): Uint8Array {
  const { width: W, height: H } = src;
  if (W < 1 || H < 1 || outW < 1 || outH < 1)
    throw new Error(`resizeStretch: sizes must be positive (${W}x${H} -> ${outW}x${outH})`);
  if (src.data.length !== W * H * src.channels)
    throw new Error(`resizeStretch: ${src.data.length} values, expected ${W}x${H}x${src.channels}`);
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
function resizeShrunk(shrunk: BoxShrunk, outW: number, outH: number): Uint8Array {
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

/**
 * Interleaved pixels (any channel count and element type) stored as w x h,
 * turned into the displayed picture. Orientation 1 returns the input itself.
 */
export function referenceOrientPixels<T extends Uint8Array | Uint8ClampedArray | Float32Array>(
  data: T,
  width: number,
  height: number,
  channels: number,
  o: Orientation,
): { data: T; width: number; height: number } {
  if (o === 1) return { data, width, height };
  if (data.length !== width * height * channels)
    throw new Error(`orientPixels: ${data.length} values, expected ${width}x${height}x${channels}`);
  const out = new (data.constructor as new (n: number) => T)(data.length);
  const size = orientedSize(width, height, o);
  let d = 0;
  for (let y = 0; y < size.height; y++) {
    for (let x = 0; x < size.width; x++) {
      const [sx, sy] = storedPixel(x, y, width, height, o);
      const s = (sy * width + sx) * channels;
      for (let c = 0; c < channels; c++) out[d++] = data[s + c];
    }
  }
  return { data: out, width: size.width, height: size.height };
}

/** modelInputRgb as it was: the resize, then the turn. */
export function referenceModelInputRgb(src: PixelSource, orientation: Orientation, size: number): Uint8Array {
  const rgb = referenceResizeStretch(src, size, size);
  return referenceOrientPixels(rgb, size, size, 3, orientation).data;
}

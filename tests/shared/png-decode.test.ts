/**
 * The row-streaming PNG decoder: files written here by a small independent
 * encoder (node:zlib, every row filter, every colour type and bit depth) must
 * give back the exact pixels they were made from; files written by sharp
 * (interlaced, palette) must give sharp's own pixels; broken files give
 * PngDecodeError. The streamed box pre-shrink must equal resizing the whole
 * image.
 */
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import {
  PngDecodeError,
  boxShrinkerFor,
  decodePngRows,
  resizeShrunk,
  resizeStretch,
  type PngInfo,
} from '@protoatlas/shared';
import { pngChunk } from '../edge/helpers/images.ts';

function packLine(samples: number[], depth: number): number[] {
  if (depth === 16) return samples.flatMap((s) => [s >> 8, s & 255]);
  if (depth === 8) return samples;
  const out = new Array(Math.ceil((samples.length * depth) / 8)).fill(0);
  samples.forEach((s, i) => {
    const bit = i * depth;
    out[bit >> 3] |= s << (8 - depth - (bit & 7));
  });
  return out;
}

/** Applies PNG filter `f` to one line (bpp bytes per pixel), given the previous raw line. */
function filterLine(f: number, line: number[], prev: number[], bpp: number): number[] {
  return line.map((v, i) => {
    const a = i >= bpp ? line[i - bpp] : 0;
    const b = prev[i] ?? 0;
    const c = i >= bpp ? (prev[i - bpp] ?? 0) : 0;
    const pa = Math.abs(b - c);
    const pb = Math.abs(a - c);
    const pc = Math.abs(a + b - 2 * c);
    const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f];
    return (v - pred) & 255;
  });
}

interface Spec {
  width: number;
  height: number;
  colorType: number;
  depth: number;
  /** Samples per row, in file order (palette indices for colour type 3). */
  rows: number[][];
  plte?: number[];
  trns?: number[];
}

/** A non-interlaced PNG, rows filtered with types 0..4 in turn, IDAT split in small chunks. */
function encodePng(s: Spec): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, s.width);
  v.setUint32(4, s.height);
  ihdr.set([s.depth, s.colorType, 0, 0, 0], 8);
  const spp = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[s.colorType]!;
  const bpp = Math.max(1, (spp * s.depth) >> 3);
  const raw: number[] = [];
  let prev: number[] = [];
  s.rows.forEach((samples, y) => {
    const line = packLine(samples, s.depth);
    const f = y % 5;
    raw.push(f, ...filterLine(f, line, prev, bpp));
    prev = line;
  });
  const z = deflateSync(Uint8Array.from(raw));
  const parts = [Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr)];
  if (s.plte) parts.push(pngChunk('PLTE', Uint8Array.from(s.plte)));
  if (s.trns) parts.push(pngChunk('tRNS', Uint8Array.from(s.trns)));
  for (let o = 0; o < z.length; o += 97) parts.push(pngChunk('IDAT', z.subarray(o, o + 97)));
  parts.push(pngChunk('IEND', new Uint8Array(0)));
  return Buffer.concat(parts);
}

async function decodeAll(bytes: Uint8Array): Promise<{ info: PngInfo; data: Uint8Array }> {
  let data = new Uint8Array(0);
  const info = await decodePngRows(
    bytes,
    (i) => (data = new Uint8Array(i.width * i.height * i.channels)),
    (row, y) => data.set(row, y * row.length),
  );
  return { info, data };
}

/** Deterministic pseudo-random samples below `max`. */
function samples(n: number, max: number, seed: number): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % max;
  });
}

describe('row-streaming PNG decoder', () => {
  const W = 13;
  const H = 11;
  it('grey at 1, 2, 4, 8 and 16 bits: levels scaled to 8 bits (16-bit: the high byte)', async () => {
    for (const depth of [1, 2, 4, 8, 16]) {
      const max = 2 ** depth;
      const rows = Array.from({ length: H }, (_, y) => samples(W, max, y + depth));
      const { info, data } = await decodeAll(encodePng({ width: W, height: H, colorType: 0, depth, rows }));
      expect(info).toEqual({ width: W, height: H, channels: 3 });
      rows.forEach((r, y) =>
        r.forEach((s, x) => {
          const want = depth === 16 ? s >> 8 : Math.round((s * 255) / (max - 1));
          expect([...data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3)]).toEqual([want, want, want]);
        }),
      );
    }
  });

  it('RGB, RGBA and grey+alpha at 8 and 16 bits', async () => {
    for (const [colorType, spp] of [
      [2, 3],
      [6, 4],
      [4, 2],
    ]) {
      for (const depth of [8, 16]) {
        const rows = Array.from({ length: H }, (_, y) => samples(W * spp, 2 ** depth, 7 * y + colorType));
        const { info, data } = await decodeAll(encodePng({ width: W, height: H, colorType, depth, rows }));
        const ch = colorType === 2 ? 3 : 4;
        expect(info.channels).toBe(ch);
        const hi = (s: number) => (depth === 16 ? s >> 8 : s);
        rows.forEach((r, y) => {
          for (let x = 0; x < W; x++) {
            const px = r.slice(x * spp, x * spp + spp).map(hi);
            const want = colorType === 4 ? [px[0], px[0], px[0], px[1]] : px;
            expect([...data.subarray((y * W + x) * ch, (y * W + x + 1) * ch)]).toEqual(want);
          }
        });
      }
    }
  });

  it('palette at 1, 2, 4 and 8 bits, with and without tRNS alpha', async () => {
    for (const depth of [1, 2, 4, 8]) {
      const n = Math.min(2 ** depth, 40);
      const plte = samples(3 * n, 256, depth);
      const trns = samples(Math.max(1, n - 1), 256, depth + 1);
      const rows = Array.from({ length: H }, (_, y) => samples(W, n, y * 3 + depth));
      for (const withAlpha of [false, true]) {
        const spec = { width: W, height: H, colorType: 3, depth, rows, plte, trns: withAlpha ? trns : undefined };
        const { info, data } = await decodeAll(encodePng(spec));
        const ch = withAlpha ? 4 : 3;
        expect(info.channels).toBe(ch);
        rows.forEach((r, y) =>
          r.forEach((i, x) => {
            const want = plte.slice(3 * i, 3 * i + 3);
            if (withAlpha) want.push(i < trns.length ? trns[i] : 255);
            expect([...data.subarray((y * W + x) * ch, (y * W + x + 1) * ch)]).toEqual(want);
          }),
        );
      }
    }
  });

  it('tRNS on grey and RGB makes that one colour transparent', async () => {
    const rows = Array.from({ length: H }, (_, y) => samples(W * 3, 4, y));
    const rgb = await decodeAll(
      encodePng({ width: W, height: H, colorType: 2, depth: 8, rows, trns: [0, 1, 0, 2, 0, 3] }),
    );
    expect(rgb.info.channels).toBe(4);
    rows.forEach((r, y) => {
      for (let x = 0; x < W; x++) {
        const key = r[3 * x] === 1 && r[3 * x + 1] === 2 && r[3 * x + 2] === 3;
        expect(rgb.data[(y * W + x) * 4 + 3]).toBe(key ? 0 : 255);
      }
    });
    const grey = Array.from({ length: H }, (_, y) => samples(W, 16, y + 5));
    const g = await decodeAll(encodePng({ width: W, height: H, colorType: 0, depth: 4, rows: grey, trns: [0, 9] }));
    grey.forEach((r, y) => r.forEach((s, x) => expect(g.data[(y * W + x) * 4 + 3]).toBe(s === 9 ? 0 : 255)));
  });

  it("interlaced (Adam7) and sharp's own palette files decode to sharp's pixels", async () => {
    const w = 37;
    const h = 29;
    const px = Buffer.from(samples(w * h * 3, 256, 11));
    const raw = { raw: { width: w, height: h, channels: 3 as const } };
    for (const opts of [
      { progressive: true },
      { palette: true, colours: 16, dither: 0 },
      { progressive: true, palette: true },
    ]) {
      const file = await sharp(px, raw).png(opts).toBuffer();
      const ref = await sharp(file).removeAlpha().raw().toBuffer();
      const { info, data } = await decodeAll(file);
      expect(info).toEqual({ width: w, height: h, channels: 3 });
      expect(Buffer.from(data).equals(ref)).toBe(true);
    }
  });

  it('refuses broken files with PngDecodeError, naming what is wrong', async () => {
    const rows = Array.from({ length: H }, (_, y) => samples(W * 3, 256, y));
    const good = encodePng({ width: W, height: H, colorType: 2, depth: 8, rows });
    // Cut inside the image data, keeping the chunk structure (a short final IDAT).
    const z = deflateSync(Uint8Array.from(rows.slice(0, 4).flatMap((r) => [0, ...r])));
    const short = Buffer.concat([good.subarray(0, 33), pngChunk('IDAT', z), pngChunk('IEND', new Uint8Array(0))]);
    await expect(decodeAll(short)).rejects.toThrow(/truncated PNG: the image data ends after 4 of 11 rows/);
    const garbage = Buffer.concat([good.subarray(0, 33), pngChunk('IDAT', Uint8Array.from(samples(200, 256, 1)))]);
    await expect(decodeAll(garbage)).rejects.toThrow(PngDecodeError);
    const badDepth = Uint8Array.from(good);
    badDepth[24] = 3;
    await expect(decodeAll(badDepth)).rejects.toThrow(/colour type 2 with bit depth 3/);
    const noData = Buffer.concat([good.subarray(0, 33), pngChunk('IEND', new Uint8Array(0))]);
    await expect(decodeAll(noData)).rejects.toThrow(/no image data/);
  });
});

describe('streamed box pre-shrink', () => {
  it('gives the same model input as resizing the whole image, for RGB and RGBA and odd sizes', () => {
    for (const [w, h, ch, out] of [
      [401, 299, 3, 56],
      [640, 427, 4, 64],
      [97, 211, 3, 24],
    ] as const) {
      const data = Uint8Array.from(samples(w * h * ch, 256, w));
      const whole = resizeStretch({ data, width: w, height: h, channels: ch }, out, out);
      const shrinker = boxShrinkerFor(w, h, out, out);
      for (let y = 0; y < h; y++) shrinker.push(data.subarray(y * w * ch, (y + 1) * w * ch), 0, ch, y);
      expect(Buffer.from(resizeShrunk(shrinker.result(), out, out)).equals(Buffer.from(whole))).toBe(true);
    }
  });
});

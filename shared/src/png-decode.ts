/**
 * A PNG decoder that hands out 8-bit rows one at a time, so a caller that only
 * needs a reduced image (the model input) never holds the full-size picture:
 * the compressed data is inflated by the runtime's own DecompressionStream
 * (native zlib in Node, workerd and browsers), each scanline is unfiltered
 * against the previous one and converted as sharp's PNG loader reads it:
 * grey and palette expanded to RGB, 16-bit cut to its high byte, tRNS made
 * alpha. Interlaced (Adam7) files are the exception: their rows only exist
 * once the last pass is in, so they are assembled in one 8-bit image first.
 *
 * No colour management: gAMA, cHRM and sRGB chunks are ignored, as sharp
 * ignores them; an iCCP profile is reported by `readIccProfile`, not applied.
 */

export class PngDecodeError extends Error {}

export interface PngInfo {
  width: number;
  height: number;
  /** 4 when the file has an alpha channel or a tRNS chunk, else 3. */
  channels: 3 | 4;
}

/** Called with each row, top to bottom: `row` holds width x channels bytes and is reused for the next row. */
export type PngRowSink = (row: Uint8Array, y: number) => void;

const u32 = (b: Uint8Array, o: number) => b[o] * 2 ** 24 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
const type4 = (b: Uint8Array, o: number) => String.fromCharCode(b[o], b[o + 1], b[o + 2], b[o + 3]);

/** Samples per pixel of each colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA). */
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

interface Layout {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlaced: boolean;
  palette: Uint8Array | null;
  /** Alpha per palette entry (palette images) or the transparent grey/RGB value, 16-bit samples. */
  trns: Uint8Array | null;
  idat: Uint8Array[];
}

function parseChunks(b: Uint8Array): Layout {
  if (b.length < 33 || type4(b, 12) !== 'IHDR') throw new PngDecodeError('corrupt PNG: no IHDR header');
  const layout: Layout = {
    width: u32(b, 16),
    height: u32(b, 20),
    depth: b[24],
    colorType: b[25],
    interlaced: b[28] === 1,
    palette: null,
    trns: null,
    idat: [],
  };
  if (!DEPTHS[layout.colorType]?.includes(layout.depth)) {
    throw new PngDecodeError(`corrupt PNG: colour type ${layout.colorType} with bit depth ${layout.depth}`);
  }
  if (b[26] !== 0 || b[27] !== 0 || b[28] > 1) throw new PngDecodeError('corrupt PNG: unknown compression or filter');
  let o = 8;
  while (o + 12 <= b.length) {
    const len = u32(b, o);
    const type = type4(b, o + 4);
    if (o + 12 + len > b.length) throw new PngDecodeError(`truncated PNG: the ${type} chunk runs past the end`);
    const data = b.subarray(o + 8, o + 8 + len);
    if (type === 'IDAT') layout.idat.push(data);
    else if (type === 'PLTE') layout.palette = data;
    else if (type === 'tRNS') layout.trns = data;
    else if (type === 'IEND') break;
    o += 12 + len;
  }
  if (layout.idat.length === 0) throw new PngDecodeError('corrupt PNG: no image data');
  if (layout.colorType === 3 && !layout.palette) throw new PngDecodeError('corrupt PNG: palette image without PLTE');
  return layout;
}

/** Undo one scanline's filter in place (`prev` is the unfiltered previous line, zeros for the first). */
function unfilter(filter: number, line: Uint8Array, prev: Uint8Array, bpp: number): void {
  const n = line.length;
  switch (filter) {
    case 0:
      return;
    case 1:
      for (let i = bpp; i < n; i++) line[i] = (line[i] + line[i - bpp]) & 255;
      return;
    case 2:
      for (let i = 0; i < n; i++) line[i] = (line[i] + prev[i]) & 255;
      return;
    case 3:
      for (let i = 0; i < bpp; i++) line[i] = (line[i] + (prev[i] >> 1)) & 255;
      for (let i = bpp; i < n; i++) line[i] = (line[i] + ((line[i - bpp] + prev[i]) >> 1)) & 255;
      return;
    case 4:
      for (let i = 0; i < bpp; i++) line[i] = (line[i] + prev[i]) & 255;
      for (let i = bpp; i < n; i++) {
        const a = line[i - bpp];
        const b = prev[i];
        const c = prev[i - bpp];
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        line[i] = (line[i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 255;
      }
      return;
    default:
      throw new PngDecodeError(`corrupt PNG: unknown row filter ${filter}`);
  }
}

/** Turns one unfiltered scanline of `w` pixels into 8-bit RGB or RGBA. */
function makeConverter(l: Layout, channels: 3 | 4): (line: Uint8Array, w: number, out: Uint8Array) => void {
  const { depth, colorType, palette, trns } = l;
  const wide = depth === 16;
  const step = wide ? 2 : 1;
  if (colorType === 2 || colorType === 6) {
    const src = colorType === 6 ? 4 : 3;
    // The transparent colour (tRNS of an RGB image) as samples of the file's depth.
    const key = colorType === 2 && trns && trns.length >= 6 ? [0, 2, 4].map((k) => (trns[k] << 8) | trns[k + 1]) : null;
    return (line, w, out) => {
      for (let x = 0, i = 0, o = 0; x < w; x++, i += src * step, o += channels) {
        out[o] = line[i];
        out[o + 1] = line[i + step];
        out[o + 2] = line[i + 2 * step];
        if (channels === 4) {
          if (colorType === 6) out[o + 3] = line[i + 3 * step];
          else {
            const sample = (k: number) => (wide ? (line[i + 2 * k] << 8) | line[i + 2 * k + 1] : line[i + k]);
            out[o + 3] = key && sample(0) === key[0] && sample(1) === key[1] && sample(2) === key[2] ? 0 : 255;
          }
        }
      }
    };
  }
  if (colorType === 4) {
    return (line, w, out) => {
      for (let x = 0, i = 0, o = 0; x < w; x++, i += 2 * step, o += 4) {
        out[o] = out[o + 1] = out[o + 2] = line[i];
        out[o + 3] = line[i + step];
      }
    };
  }
  // Grey or palette: one sample of `depth` bits per pixel.
  const max = (1 << Math.min(depth, 8)) - 1;
  const greyKey = colorType === 0 && trns && trns.length >= 2 ? (trns[0] << 8) | trns[1] : -1;
  const sampleAt = (line: Uint8Array, x: number): number => {
    if (depth === 16) return (line[2 * x] << 8) | line[2 * x + 1];
    if (depth === 8) return line[x];
    const bit = x * depth;
    return (line[bit >> 3] >> (8 - depth - (bit & 7))) & max;
  };
  if (colorType === 3) {
    const entries = palette!.length / 3;
    return (line, w, out) => {
      for (let x = 0, o = 0; x < w; x++, o += channels) {
        const v = sampleAt(line, x);
        if (v >= entries) throw new PngDecodeError(`corrupt PNG: palette index ${v} of ${entries} entries`);
        out[o] = palette![3 * v];
        out[o + 1] = palette![3 * v + 1];
        out[o + 2] = palette![3 * v + 2];
        if (channels === 4) out[o + 3] = trns && v < trns.length ? trns[v] : 255;
      }
    };
  }
  return (line, w, out) => {
    for (let x = 0, o = 0; x < w; x++, o += channels) {
      const v = sampleAt(line, x);
      const g = depth === 16 ? v >> 8 : depth === 8 ? v : Math.round((v * 255) / max);
      out[o] = out[o + 1] = out[o + 2] = g;
      if (channels === 4) out[o + 3] = v === greyKey ? 0 : 255;
    }
  };
}

/** Inflates the IDAT stream with the runtime's zlib, handing each output chunk to `sink` as it comes. */
async function inflate(idat: Uint8Array[], sink: (chunk: Uint8Array) => boolean): Promise<void> {
  const stream = new DecompressionStream('deflate');
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  const writing = (async () => {
    for (const chunk of idat) await writer.write(chunk as Uint8Array<ArrayBuffer>);
    await writer.close();
  })();
  writing.catch(() => undefined);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (!sink(value)) {
        // Every row is in: what follows (padding, a checksum) is not needed.
        await reader.cancel();
        writing.catch(() => undefined);
        return;
      }
    }
    await writing;
  } catch (e) {
    throw new PngDecodeError(`corrupt PNG: the image data does not inflate (${e instanceof Error ? e.message : e})`);
  }
}

const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/**
 * Decodes `bytes` row by row into `sink`. `start` is called once with the
 * size and channel count before the first row. Throws PngDecodeError for
 * broken files (bad chunks, data that does not inflate, too few rows).
 */
export async function decodePngRows(
  bytes: Uint8Array,
  start: (info: PngInfo) => void,
  sink: PngRowSink,
): Promise<PngInfo> {
  const l = parseChunks(bytes);
  const { width, height } = l;
  const hasAlpha = l.colorType === 4 || l.colorType === 6 || l.trns !== null;
  const channels: 3 | 4 = hasAlpha ? 4 : 3;
  const info = { width, height, channels };
  start(info);
  const convert = makeConverter(l, channels);
  const bitsPerPixel = SAMPLES[l.colorType] * l.depth;
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const lineBytes = (w: number) => Math.ceil((w * bitsPerPixel) / 8);

  // The passes: one for a plain file, seven sub-images for Adam7.
  const passes = (l.interlaced ? ADAM7 : [[0, 0, 1, 1] as const]).map(([x0, y0, dx, dy]) => ({
    x0,
    y0,
    dx,
    dy,
    w: Math.ceil((width - x0) / dx),
    h: Math.ceil((height - y0) / dy),
  }));
  const full = l.interlaced ? new Uint8Array(width * height * channels) : null;
  const out = new Uint8Array(Math.max(...passes.map((p) => p.w)) * channels);
  let pass = 0;
  let row = 0;
  let line = new Uint8Array(1 + lineBytes(passes[0].w));
  let prev = new Uint8Array(line.length);
  let filled = 0;
  const skipEmpty = () => {
    while (pass < passes.length && (passes[pass].w === 0 || passes[pass].h === 0)) pass++;
    if (pass < passes.length) {
      line = new Uint8Array(1 + lineBytes(passes[pass].w));
      prev = new Uint8Array(line.length);
    }
  };
  skipEmpty();
  const finishLine = () => {
    const p = passes[pass];
    const data = line.subarray(1);
    unfilter(line[0], data, prev.subarray(1), bpp);
    convert(data, p.w, out);
    if (!full) sink(out.subarray(0, width * channels), row);
    else {
      const y = p.y0 + row * p.dy;
      for (let x = 0; x < p.w; x++) {
        const o = (y * width + p.x0 + x * p.dx) * channels;
        for (let c = 0; c < channels; c++) full[o + c] = out[x * channels + c];
      }
    }
    [line, prev] = [prev, line];
    filled = 0;
    if (++row === p.h) {
      row = 0;
      pass++;
      skipEmpty();
    }
  };
  await inflate(l.idat, (chunk) => {
    let i = 0;
    while (i < chunk.length && pass < passes.length) {
      const n = Math.min(line.length - filled, chunk.length - i);
      line.set(chunk.subarray(i, i + n), filled);
      filled += n;
      i += n;
      if (filled === line.length) finishLine();
    }
    return pass < passes.length;
  });
  if (pass < passes.length) {
    const got = l.interlaced ? `pass ${pass + 1} of 7` : `${row} of ${height} rows`;
    throw new PngDecodeError(`truncated PNG: the image data ends after ${got}`);
  }
  if (full) for (let y = 0; y < height; y++) sink(full.subarray(y * width * channels, (y + 1) * width * channels), y);
  return info;
}

/**
 * Embedded ICC colour profiles of JPEG (APP2 ICC_PROFILE), PNG (iCCP) and
 * WebP (ICCP) files: found and named, not applied. The trainer's sharp
 * converts a picture with an embedded profile to sRGB through it; the edge
 * does not, so it reports the profile in its answer instead of silently
 * reading, say, a Display P3 phone photo as sRGB (see docs/edge-performance.md).
 */

export interface IccProfileInfo {
  /** The profile's description tag ('desc' or 'mluc'), or null when it has none that can be read. */
  description: string | null;
  /** The data colour space of the header, e.g. 'RGB', 'GRAY', 'CMYK'. */
  colorSpace: string;
  /** Profile size in bytes, as its header says. */
  bytes: number;
}

const u16be = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u32be = (b: Uint8Array, o: number) => b[o] * 2 ** 24 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
const u32le = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 2 ** 24;
const ascii = (b: Uint8Array, o: number, n: number) => String.fromCharCode(...b.subarray(o, Math.min(b.length, o + n)));

/** The description of a profile: a v2 'desc' (ASCII) or v4 'mluc' (UTF-16BE, first record) tag. */
function description(p: Uint8Array): string | null {
  if (p.length < 132) return null;
  const count = u32be(p, 128);
  for (let i = 0; i < count && 132 + 12 * (i + 1) <= p.length; i++) {
    const e = 132 + 12 * i;
    if (ascii(p, e, 4) !== 'desc') continue;
    const o = u32be(p, e + 4);
    const type = ascii(p, o, 4);
    if (type === 'desc' && o + 12 <= p.length) {
      const n = u32be(p, o + 8);
      return ascii(p, o + 12, Math.max(0, n - 1)).replace(/\0+$/, '') || null;
    }
    if (type === 'mluc' && o + 28 <= p.length && u32be(p, o + 8) > 0) {
      const len = u32be(p, o + 20);
      const start = o + u32be(p, o + 24);
      let s = '';
      for (let k = start; k + 1 < Math.min(p.length, start + len); k += 2) s += String.fromCharCode(u16be(p, k));
      return s.replace(/\0+$/, '') || null;
    }
    return null;
  }
  return null;
}

function profileInfo(p: Uint8Array): IccProfileInfo | null {
  if (p.length < 128 || ascii(p, 36, 4) !== 'acsp') return null;
  return { description: description(p), colorSpace: ascii(p, 16, 4).trim(), bytes: u32be(p, 0) };
}

/** A JPEG's profile: the APP2 ICC_PROFILE segments joined in their sequence order. */
function jpegProfile(b: Uint8Array): Uint8Array | null {
  const parts: [number, Uint8Array][] = [];
  let o = 2;
  while (o + 4 <= b.length && b[o] === 0xff) {
    const marker = b[o + 1];
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      o += 2;
      continue;
    }
    if (marker === 0xda || marker === 0xd9) break;
    const len = u16be(b, o + 2);
    if (marker === 0xe2 && len >= 16 && ascii(b, o + 4, 12) === 'ICC_PROFILE\0') {
      parts.push([b[o + 16], b.subarray(o + 18, Math.min(b.length, o + 2 + len))]);
    }
    o += 2 + len;
  }
  if (parts.length === 0) return null;
  parts.sort((a, c) => a[0] - c[0]);
  const out = new Uint8Array(parts.reduce((n, [, p]) => n + p.length, 0));
  let k = 0;
  for (const [, p] of parts) {
    out.set(p, k);
    k += p.length;
  }
  return out;
}

/** A PNG's iCCP chunk, inflated (name, NUL, method 0, zlib data). */
async function pngProfile(b: Uint8Array): Promise<Uint8Array | null> {
  let o = 8;
  while (o + 12 <= b.length) {
    const len = u32be(b, o);
    const type = ascii(b, o + 4, 4);
    if (type === 'IDAT' || type === 'IEND') return null;
    if (type === 'iCCP') {
      const data = b.subarray(o + 8, Math.min(b.length, o + 8 + len));
      const nul = data.indexOf(0);
      if (nul < 0 || nul + 2 > data.length) return null;
      const stream = new Blob([data.subarray(nul + 2) as Uint8Array<ArrayBuffer>])
        .stream()
        .pipeThrough(new DecompressionStream('deflate'));
      try {
        return new Uint8Array(await new Response(stream).arrayBuffer());
      } catch {
        return null;
      }
    }
    o += 12 + len;
  }
  return null;
}

/** A WebP's ICCP chunk (extended format only). */
function webpProfile(b: Uint8Array): Uint8Array | null {
  const end = Math.min(b.length, 8 + u32le(b, 4));
  let o = 12;
  while (o + 8 <= end) {
    const len = u32le(b, o + 4);
    if (ascii(b, o, 4) === 'ICCP') return b.subarray(o + 8, Math.min(end, o + 8 + len));
    o += 8 + len + (len & 1);
  }
  return null;
}

/** The embedded ICC profile of a JPEG, PNG or WebP file, or null when it has none (or none that parses). */
export async function readIccProfile(b: Uint8Array): Promise<IccProfileInfo | null> {
  let p: Uint8Array | null = null;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8) p = jpegProfile(b);
  else if (b.length >= 8 && u32be(b, 0) === 0x89504e47) p = await pngProfile(b);
  else if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') p = webpProfile(b);
  return p ? profileInfo(p) : null;
}

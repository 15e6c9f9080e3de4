/**
 * The one reader of image headers (the edge's uploads, the site's pictures):
 * what a file is, read from its bytes before any decoding. The format by
 * signature (whatever a Content-Type said), the size from the header (so a
 * decompression bomb is refused without inflating it), and whether the file
 * is complete (decoders happily return a half-grey picture from a truncated one).
 */

export type ImageFormat = 'jpeg' | 'png' | 'webp';

export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
}

/**
 * Why a header was refused: `unsupported` for an image format (or feature)
 * we recognise but do not decode, `undecodable` for anything broken.
 */
export class ImageHeaderError extends Error {
  readonly kind: 'unsupported' | 'undecodable';
  constructor(kind: 'unsupported' | 'undecodable', message: string) {
    super(message);
    this.kind = kind;
  }
}

/** Media types of the formats we decode. */
export const IMAGE_MEDIA_TYPES: Record<ImageFormat, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
};

const u16be = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u32be = (b: Uint8Array, o: number) => b[o] * 2 ** 24 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
const u32le = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 2 ** 24;
const ascii = (b: Uint8Array, o: number, n: number) => String.fromCharCode(...b.subarray(o, o + n));

/** Formats we recognise but do not decode: a 415 rather than "undecodable". */
function otherFormat(b: Uint8Array): string | null {
  if (ascii(b, 0, 4) === 'GIF8') return 'GIF';
  if (ascii(b, 0, 2) === 'BM' && b.length > 26) return 'BMP';
  if (
    (b[0] === 0x49 && b[1] === 0x49 && b[2] === 42 && b[3] === 0) ||
    (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0 && b[3] === 42)
  )
    return 'TIFF';
  if (ascii(b, 4, 4) === 'ftyp') return /^(avif|avis)/.test(ascii(b, 8, 4)) ? 'AVIF' : 'HEIF/MP4';
  return null;
}

/** The format from the file's signature, or null for anything else. */
export function sniffImageFormat(b: Uint8Array): ImageFormat | null {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && u32be(b, 0) === 0x89504e47 && u32be(b, 4) === 0x0d0a1a0a) return 'png';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return 'webp';
  return null;
}

/** The format, or an ImageHeaderError saying what the bytes are instead. */
export function sniffFormat(b: Uint8Array): ImageFormat {
  const format = sniffImageFormat(b);
  if (format) return format;
  const other = otherFormat(b);
  if (other) throw new ImageHeaderError('unsupported', `${other} images are not supported: send JPEG, PNG or WebP`);
  throw undecodable('the body is not a JPEG, PNG or WebP image');
}

const undecodable = (why: string) => new ImageHeaderError('undecodable', why);

/** SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not. */
const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

/** Walks a JPEG's segments and scans to the end-of-image marker. */
function jpegHeader(b: Uint8Array, checkComplete: boolean): ImageHeader {
  let o = 2;
  let size: { width: number; height: number } | null = null;
  while (o + 1 < b.length) {
    if (b[o] !== 0xff) throw undecodable(`corrupt JPEG: expected a marker at byte ${o}`);
    const m = b[o + 1];
    if (m === 0xff) {
      o++;
      continue;
    }
    if (m === 0xd9) {
      if (!size) throw undecodable('corrupt JPEG: no frame header');
      return { format: 'jpeg', ...size };
    }
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) {
      o += 2;
      continue;
    }
    if (o + 4 > b.length) break;
    const len = u16be(b, o + 2);
    if (len < 2) throw undecodable(`corrupt JPEG: bad segment length at byte ${o}`);
    if (isSof(m)) {
      if (o + 9 > b.length) break;
      size = { height: u16be(b, o + 5), width: u16be(b, o + 7) };
      if (size.width === 0 || size.height === 0) throw undecodable('JPEG without a stated size (DNL) is not supported');
      // Dimensions are all the caller needs before deciding whether to go on.
      if (!checkComplete) return { format: 'jpeg', ...size };
    }
    o += 2 + len;
    if (m === 0xda) {
      // Entropy-coded data runs to the next marker that is not a stuffed byte or a restart
      // (indexOf: a native scan, which a 12 MP photo's megabytes need).
      while (o + 1 < b.length) {
        const f = b.indexOf(0xff, o);
        if (f < 0 || f + 1 >= b.length) {
          o = b.length;
          break;
        }
        const n = b[f + 1];
        if (n !== 0 && n !== 0xff && !(n >= 0xd0 && n <= 0xd7)) {
          o = f;
          break;
        }
        o = f + 1;
      }
    }
  }
  if (!size) throw undecodable('corrupt JPEG: no frame header');
  throw undecodable('truncated JPEG: the file ends before its end-of-image marker');
}

function pngHeader(b: Uint8Array, checkComplete: boolean): ImageHeader {
  if (b.length < 24 || ascii(b, 12, 4) !== 'IHDR') throw undecodable('corrupt PNG: no IHDR header');
  const size = { width: u32be(b, 16), height: u32be(b, 20) };
  if (size.width === 0 || size.height === 0) throw undecodable('corrupt PNG: zero size');
  if (!checkComplete) return { format: 'png', ...size };
  let o = 8;
  let idat = false;
  while (o + 12 <= b.length) {
    const len = u32be(b, o);
    const type = ascii(b, o + 4, 4);
    if (o + 12 + len > b.length) break;
    if (type === 'IDAT') idat = true;
    if (type === 'IEND') {
      if (!idat) throw undecodable('corrupt PNG: no image data');
      return { format: 'png', ...size };
    }
    o += 12 + len;
  }
  throw undecodable('truncated PNG: the file ends before its IEND chunk');
}

function webpHeader(b: Uint8Array, checkComplete: boolean): ImageHeader {
  const riffEnd = 8 + u32le(b, 4);
  if (checkComplete && riffEnd > b.length) throw undecodable(`truncated WebP: ${b.length} bytes of ${riffEnd}`);
  if (b.length < 30) throw undecodable('corrupt WebP: header too short');
  const chunk = ascii(b, 12, 4);
  const d = 20;
  let size: { width: number; height: number };
  if (chunk === 'VP8 ') {
    if (b[d + 3] !== 0x9d || b[d + 4] !== 0x01 || b[d + 5] !== 0x2a)
      throw undecodable('corrupt WebP: bad VP8 frame header');
    size = { width: (b[d + 6] | (b[d + 7] << 8)) & 0x3fff, height: (b[d + 8] | (b[d + 9] << 8)) & 0x3fff };
  } else if (chunk === 'VP8L') {
    if (b[d] !== 0x2f) throw undecodable('corrupt WebP: bad VP8L signature');
    const bits = u32le(b, d + 1);
    size = { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  } else if (chunk === 'VP8X') {
    // Flags byte: bit 1 marks an animation, which libwebp's still-image decoder cannot read.
    const why = 'animated WebP images are not supported: send a still image (JPEG, PNG or WebP)';
    if (b[d] & 0x02) throw new ImageHeaderError('unsupported', why);
    size = {
      width: 1 + (b[d + 4] | (b[d + 5] << 8) | (b[d + 6] << 16)),
      height: 1 + (b[d + 7] | (b[d + 8] << 8) | (b[d + 9] << 16)),
    };
  } else {
    throw undecodable(`corrupt WebP: unknown first chunk "${chunk}"`);
  }
  if (size.width === 0 || size.height === 0) throw undecodable('corrupt WebP: zero size');
  if (checkComplete) {
    let o = 12;
    while (o + 8 <= riffEnd) {
      const len = u32le(b, o + 4);
      o += 8 + len + (len & 1);
    }
    if (o > riffEnd + 1) throw undecodable('truncated WebP: a chunk runs past the end of the file');
  }
  return { format: 'webp', ...size };
}

/**
 * Format and size from the header. With `checkComplete`, also walks the file's
 * structure to its end marker, refusing truncated files. Throws ImageHeaderError.
 */
export function readImageHeader(b: Uint8Array, opts: { checkComplete?: boolean } = {}): ImageHeader {
  const format = sniffFormat(b);
  const full = opts.checkComplete ?? true;
  if (format === 'jpeg') return jpegHeader(b, full);
  if (format === 'png') return pngHeader(b, full);
  return webpHeader(b, full);
}

/** Format and size, or null when the bytes are not a readable JPEG, PNG or WebP header. */
export function imageSizeFromHeader(b: Uint8Array): ImageHeader | null {
  try {
    return readImageHeader(b, { checkComplete: false });
  } catch (e) {
    if (e instanceof ImageHeaderError) return null;
    throw e;
  }
}

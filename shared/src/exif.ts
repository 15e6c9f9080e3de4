/**
 * EXIF orientation: reading the tag from JPEG, PNG and WebP files, and turning
 * pixels stored one way into the picture a viewer shows (what sharp's
 * autoOrient does in the trainer). Pure and bounds-checked: a malformed file
 * reads as orientation 1, it never throws.
 */

/** EXIF orientation, 1 (as stored) to 8. */
export type Orientation = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;

const ORIENTATION_TAG = 0x0112;

/** The orientation tag of a TIFF (EXIF) block, or 1. */
export function tiffOrientation(b: Uint8Array, start = 0, end = b.length): Orientation {
  if (end - start < 8) return 1;
  const le = b[start] === 0x49 && b[start + 1] === 0x49;
  const be = b[start] === 0x4d && b[start + 1] === 0x4d;
  if (!le && !be) return 1;
  const u16 = (o: number) => (le ? b[o] | (b[o + 1] << 8) : (b[o] << 8) | b[o + 1]);
  const u32 = (o: number) =>
    le
      ? (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 2 ** 24
      : b[o] * 2 ** 24 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
  if (u16(start + 2) !== 42) return 1;
  const ifd = start + u32(start + 4);
  if (ifd + 2 > end) return 1;
  const count = u16(ifd);
  for (let i = 0; i < count; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > end) return 1;
    // Type 3 = SHORT, one value, stored in the first two bytes of the value field.
    if (u16(e) === ORIENTATION_TAG && u16(e + 2) === 3) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? (v as Orientation) : 1;
    }
  }
  return 1;
}

/** Skips the "Exif\0\0" prefix some writers put before the TIFF header. */
function exifPayload(b: Uint8Array, start: number, end: number): Orientation {
  const hasPrefix =
    end - start >= 6 &&
    b[start] === 0x45 &&
    b[start + 1] === 0x78 &&
    b[start + 2] === 0x69 &&
    b[start + 3] === 0x66 &&
    b[start + 4] === 0 &&
    b[start + 5] === 0;
  return tiffOrientation(b, hasPrefix ? start + 6 : start, end);
}

function jpegOrientation(b: Uint8Array): Orientation {
  let o = 2;
  while (o + 4 <= b.length) {
    if (b[o] !== 0xff) return 1;
    const marker = b[o + 1];
    // Fill bytes before a marker.
    if (marker === 0xff) {
      o++;
      continue;
    }
    // Start of scan or end of image: metadata comes before them.
    if (marker === 0xda || marker === 0xd9) return 1;
    const len = (b[o + 2] << 8) | b[o + 3];
    if (len < 2) return 1;
    const end = Math.min(b.length, o + 2 + len);
    if (
      marker === 0xe1 &&
      end - (o + 4) >= 6 &&
      b[o + 4] === 0x45 &&
      b[o + 5] === 0x78 &&
      b[o + 6] === 0x69 &&
      b[o + 7] === 0x66
    ) {
      return exifPayload(b, o + 4, end);
    }
    o += 2 + len;
  }
  return 1;
}

function pngOrientation(b: Uint8Array): Orientation {
  let o = 8;
  while (o + 12 <= b.length) {
    const len = b[o] * 2 ** 24 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
    const type = String.fromCharCode(b[o + 4], b[o + 5], b[o + 6], b[o + 7]);
    const data = o + 8;
    if (type === 'eXIf') return exifPayload(b, data, Math.min(b.length, data + len));
    if (type === 'IEND') return 1;
    o = data + len + 4;
  }
  return 1;
}

function webpOrientation(b: Uint8Array): Orientation {
  let o = 12;
  while (o + 8 <= b.length) {
    const type = String.fromCharCode(b[o], b[o + 1], b[o + 2], b[o + 3]);
    const len = (b[o + 4] | (b[o + 5] << 8) | (b[o + 6] << 16)) + b[o + 7] * 2 ** 24;
    const data = o + 8;
    if (type === 'EXIF') return exifPayload(b, data, Math.min(b.length, data + len));
    // Chunks are padded to an even size.
    o = data + len + (len & 1);
  }
  return 1;
}

/** The EXIF orientation of a JPEG, PNG or WebP file (1 when absent or unreadable). */
export function readOrientation(bytes: Uint8Array): Orientation {
  const b = bytes;
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) return jpegOrientation(b);
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return pngOrientation(b);
  if (
    b.length >= 12 &&
    b[0] === 0x52 &&
    b[1] === 0x49 &&
    b[2] === 0x46 &&
    b[3] === 0x46 &&
    b[8] === 0x57 &&
    b[9] === 0x45 &&
    b[10] === 0x42 &&
    b[11] === 0x50
  )
    return webpOrientation(b);
  return 1;
}

/** Orientations 5-8 turn the picture a quarter: width and height swap. */
export function swapsAxes(o: Orientation): boolean {
  return o >= 5;
}

/** The size a viewer shows for a stored width x height under orientation o. */
export function orientedSize(width: number, height: number, o: Orientation): { width: number; height: number } {
  return swapsAxes(o) ? { width: height, height: width } : { width, height };
}

/**
 * Maps a displayed pixel (x, y) to the stored pixel it shows, for a stored
 * image of w x h. Orientation 6 is "rotate 90 degrees clockwise to view".
 */
export function storedPixel(x: number, y: number, w: number, h: number, o: Orientation): [number, number] {
  switch (o) {
    case 2:
      return [w - 1 - x, y];
    case 3:
      return [w - 1 - x, h - 1 - y];
    case 4:
      return [x, h - 1 - y];
    case 5:
      return [y, x];
    case 6:
      return [y, h - 1 - x];
    case 7:
      return [w - 1 - y, h - 1 - x];
    case 8:
      return [w - 1 - y, x];
    default:
      return [x, y];
  }
}

/**
 * Interleaved pixels (any channel count and element type) stored as w x h,
 * turned into the displayed picture. Orientation 1 returns the input itself.
 */
export function orientPixels<T extends Uint8Array | Uint8ClampedArray | Float32Array>(
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
  // storedPixel is affine in (x, y): a stored pixel index is start + x * dx + y * dy.
  const at = ([sx, sy]: [number, number]) => sy * width + sx;
  const start = at(storedPixel(0, 0, width, height, o));
  const dx = (at(storedPixel(1, 0, width, height, o)) - start) * channels;
  const dy = (at(storedPixel(0, 1, width, height, o)) - start) * channels;
  let d = 0;
  for (let y = 0; y < size.height; y++) {
    let s = start * channels + y * dy;
    for (let x = 0; x < size.width; x++) {
      for (let c = 0; c < channels; c++) out[d++] = data[s + c];
      s += dx;
    }
  }
  return { data: out, width: size.width, height: size.height };
}

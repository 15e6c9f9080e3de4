import { open } from 'node:fs/promises';

export interface ImageSize {
  width: number;
  height: number;
}

/**
 * Pixel size of a WebP or PNG from its header, so every <img> gets width and
 * height (no layout shift) without decoding 16,000 pictures at build time.
 */
export function imageSizeFromHeader(b: Uint8Array): ImageSize | null {
  const ascii = (o: number, n: number) => String.fromCharCode(...b.subarray(o, o + n));
  const u16 = (o: number) => b[o] | (b[o + 1] << 8);
  const u24 = (o: number) => b[o] | (b[o + 1] << 8) | (b[o + 2] << 16);
  if (b.length >= 30 && ascii(0, 4) === 'RIFF' && ascii(8, 4) === 'WEBP') {
    const chunk = ascii(12, 4);
    if (chunk === 'VP8X') return { width: u24(24) + 1, height: u24(27) + 1 };
    // Lossy: a 3-byte frame tag, the 9d 01 2a start code, then 14-bit sizes.
    if (chunk === 'VP8 ' && b[23] === 0x9d && b[24] === 0x01 && b[25] === 0x2a) return { width: u16(26) & 0x3fff, height: u16(28) & 0x3fff };
    // Lossless: signature 0x2f, then width-1 and height-1 packed in 14 bits each.
    if (chunk === 'VP8L' && b[20] === 0x2f) {
      const bits = b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24);
      return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
    }
    return null;
  }
  if (b.length >= 24 && b[0] === 0x89 && ascii(1, 3) === 'PNG' && ascii(12, 4) === 'IHDR') {
    const be = (o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
    return { width: be(16), height: be(20) };
  }
  return null;
}

/** Read just enough of a file to know its size; null if it is not a WebP/PNG. */
export async function imageSize(path: string): Promise<ImageSize | null> {
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(32);
    const { bytesRead } = await fh.read(buf, 0, 32, 0);
    return imageSizeFromHeader(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

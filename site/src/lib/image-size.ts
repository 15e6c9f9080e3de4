import { open } from 'node:fs/promises';
import { imageSizeFromHeader, type ImageHeader } from '@protoatlas/shared';

/**
 * Pixel size of a picture file from its header (the shared reader), so every
 * <img> gets width and height (no layout shift) without decoding 16,000
 * pictures at build time. Null if it is not a WebP, PNG or JPEG we can read
 * from the first bytes.
 */
export async function imageSize(path: string): Promise<ImageHeader | null> {
  const fh = await open(path, 'r');
  try {
    // A WebP or PNG states its size in the first 30 bytes; a JPEG's frame header follows its metadata.
    const buf = new Uint8Array(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return imageSizeFromHeader(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

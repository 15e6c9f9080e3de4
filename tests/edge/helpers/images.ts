/**
 * Encoded test images: real JPEG, PNG and WebP files of the test bundle's
 * synthetic birds (made with sharp), plus the malformed uploads the API must
 * refuse: a decompression bomb, a truncated JPEG, a GIF, garbage.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';

export interface TestImage {
  classId: number;
  png: Uint8Array;
  /** Raw RGB of the PNG, for the native reference. */
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** One held-out test image per class (the first file of each class folder), widened to 96x64. */
export async function testImages(dataDir: string): Promise<TestImage[]> {
  const classes = (await readdir(join(dataDir, 'test'))).sort();
  return Promise.all(
    classes.map(async (cls, classId) => {
      const file = join(dataDir, 'test', cls, (await readdir(join(dataDir, 'test', cls))).sort()[0]);
      // Not square, so a swapped width and height would show.
      const img = sharp(file).resize(96, 64, { fit: 'fill' });
      const png = new Uint8Array(await img.clone().png().toBuffer());
      const raw = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      return { classId, png, rgb: new Uint8Array(raw.data), width: raw.info.width, height: raw.info.height };
    }),
  );
}

export const toJpeg = async (png: Uint8Array, quality = 95) =>
  new Uint8Array(await sharp(png).jpeg({ quality }).toBuffer());
export const toWebpLossless = async (png: Uint8Array) =>
  new Uint8Array(await sharp(png).webp({ lossless: true }).toBuffer());

/** The same picture stored turned back, with EXIF orientation 6 saying "rotate 90 degrees clockwise to view". */
export async function withOrientation6(png: Uint8Array, format: 'jpeg' | 'webp' | 'png'): Promise<Uint8Array> {
  const stored = sharp(png).rotate(270).withMetadata({ orientation: 6 });
  const encoded =
    format === 'jpeg'
      ? stored.jpeg({ quality: 95 })
      : format === 'png'
        ? stored.png()
        : stored.webp({ lossless: true });
  return new Uint8Array(await encoded.toBuffer());
}

/** One PNG chunk: length, type, data and the CRC of type + data. */
export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  out.set(Buffer.from(type, 'ascii'), 4);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A valid-looking PNG of width x height whose few bytes of image data would inflate to gigabytes. */
export function pngBomb(width: number, height: number): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const idat = deflateSync(new Uint8Array(64 * 1024));
  return Uint8Array.from([
    ...[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    ...pngChunk('IHDR', ihdr),
    ...pngChunk('IDAT', idat),
    ...pngChunk('IEND', new Uint8Array(0)),
  ]);
}

export const solidPng = async (width: number, height: number) =>
  new Uint8Array(
    await sharp({ create: { width, height, channels: 3, background: '#808080' } })
      .png()
      .toBuffer(),
  );

export const gif = Uint8Array.from(Buffer.from('R0lGODlhAQABAIAAAAAAAP///ywAAAAAAQABAAACAUwAOw==', 'base64'));

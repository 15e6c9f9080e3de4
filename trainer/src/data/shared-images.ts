/**
 * Decoded images packed into one SharedArrayBuffer, so gradient workers
 * (stages/grad-pool.ts) read the training set without a copy per thread:
 * CUB's 5,000 images at 224 px are ~0.75 GB.
 */
import type { RgbImage } from './types.ts';

export interface SharedImages {
  buffer: SharedArrayBuffer;
  /** Per image: byte offset, width, height. */
  index: Int32Array;
}

export function packImages(images: readonly RgbImage[]): SharedImages {
  let bytes = 0;
  for (const im of images) bytes += im.data.length;
  const buffer = new SharedArrayBuffer(bytes);
  const all = new Uint8Array(buffer);
  const index = new Int32Array(images.length * 3);
  let at = 0;
  images.forEach((im, i) => {
    if (im.data.length !== im.width * im.height * 3)
      throw new Error(`image ${i}: ${im.data.length} bytes for ${im.width}x${im.height} RGB`);
    all.set(im.data, at);
    index.set([at, im.width, im.height], i * 3);
    at += im.data.length;
  });
  return { buffer, index };
}

/** Views onto the shared bytes (no copy); valid in any thread the buffer was sent to. */
export function imageViews(shared: SharedImages): RgbImage[] {
  const out: RgbImage[] = [];
  for (let i = 0; i < shared.index.length; i += 3) {
    const [at, width, height] = [shared.index[i], shared.index[i + 1], shared.index[i + 2]];
    out.push({ width, height, data: new Uint8Array(shared.buffer, at, width * height * 3) });
  }
  return out;
}

/**
 * One batch of feature extraction, after decoding: normalise the decoded
 * images (once per flip) and run the backbone. Shared by the in-thread path
 * and the worker threads of feature-pool.ts.
 */
import { toNHWC } from '../data/decode.ts';
import type { RgbImage, SkippedFile } from '../data/types.ts';
import type { FrozenBackbone } from './types.ts';

export interface BatchResult {
  /** Offsets (within the batch) of images that could not be decoded. */
  invalid: number[];
  /** Why, aligned with `invalid`. */
  skipped: SkippedFile[];
  /** Per flip: the valid images' feature maps, concatenated (uint8 when quantised). */
  outputs: (Uint8Array | Float32Array)[];
}

export async function inferBatch(
  backbone: FrozenBackbone,
  decoded: { images: (RgbImage | null)[]; skipped: SkippedFile[] },
  paths: readonly string[],
  flips: readonly boolean[],
  quantized: boolean,
): Promise<BatchResult> {
  const images: RgbImage[] = [];
  const invalid: number[] = [];
  const skipped: SkippedFile[] = [];
  let s = 0;
  decoded.images.forEach((img, k) => {
    if (img) images.push(img);
    else {
      invalid.push(k);
      // decodeMany lists failures in item order, so the k-th null is the k-th skipped file.
      skipped.push(decoded.skipped[s++] ?? { path: paths[k], reason: 'could not be decoded' });
    }
  });
  const outputs: (Uint8Array | Float32Array)[] = [];
  for (const flip of flips) {
    if (images.length === 0) {
      outputs.push(quantized ? new Uint8Array(0) : new Float32Array(0));
      continue;
    }
    const x = toNHWC(images, backbone.preprocess, flip);
    outputs.push(
      quantized ? await backbone.extractQuantized!(x, images.length) : await backbone.extract(x, images.length),
    );
  }
  return { invalid, skipped, outputs };
}

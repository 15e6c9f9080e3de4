/**
 * One batch of feature extraction, after decoding: normalise the decoded
 * images (once per view: original, mirrored, augmented copies) and run the backbone. Shared by the in-thread path
 * and the worker threads of feature-pool.ts.
 */
import { toNHWC } from '../data/decode.ts';
import type { DatasetItem, RgbImage, SkippedFile } from '../data/types.ts';
import { augmentedViewInput, type FeatureView } from './feature-view.ts';
import type { FrozenBackbone } from './types.ts';

export interface BatchResult {
  /** Offsets (within the batch) of images that could not be decoded. */
  invalid: number[];
  /** Why, aligned with `invalid`. */
  skipped: SkippedFile[];
  /** Per view: the valid images' feature maps, concatenated (uint8 when quantised). */
  outputs: (Uint8Array | Float32Array)[];
}

export async function inferBatch(
  backbone: FrozenBackbone,
  decoded: { images: (RgbImage | null)[]; skipped: SkippedFile[] },
  items: readonly Pick<DatasetItem, 'id' | 'path'>[],
  views: readonly FeatureView[],
  quantized: boolean,
): Promise<BatchResult> {
  const images: RgbImage[] = [];
  const ids: string[] = [];
  const invalid: number[] = [];
  const skipped: SkippedFile[] = [];
  let s = 0;
  decoded.images.forEach((img, k) => {
    if (img) {
      images.push(img);
      ids.push(items[k].id);
    } else {
      invalid.push(k);
      // decodeMany lists failures in item order, so the k-th null is the k-th skipped file.
      skipped.push(decoded.skipped[s++] ?? { path: items[k].path, reason: 'could not be decoded' });
    }
  });
  const outputs: (Uint8Array | Float32Array)[] = [];
  for (const view of views) {
    if (images.length === 0) {
      outputs.push(quantized ? new Uint8Array(0) : new Float32Array(0));
      continue;
    }
    const { augment } = view;
    const x = augment
      ? concatInputs(images.map((img, j) => augmentedViewInput(augment, view.flip, img, ids[j], backbone.preprocess)))
      : toNHWC(images, backbone.preprocess, view.flip);
    outputs.push(
      quantized ? await backbone.extractQuantized!(x, images.length) : await backbone.extract(x, images.length),
    );
  }
  return { invalid, skipped, outputs };
}

function concatInputs(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

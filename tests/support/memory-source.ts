/** An in-memory FeatureSource over n feature maps of one shape, stored back to back (no flips, no augmentation). */
import * as tf from '@tensorflow/tfjs-core';
import type { FeatureSource } from '../../trainer/src/stages/sources.ts';

export function memorySource(feats: Float32Array, shape: [number, number, number], labels: Int32Array): FeatureSource {
  const size = shape[0] * shape[1] * shape[2];
  return {
    n: labels.length,
    shape,
    labels,
    canFlip: false,
    canAugment: false,
    features: (idx) => {
      const out = new Float32Array(idx.length * size);
      idx.forEach((i, k) => out.set(feats.subarray(i * size, (i + 1) * size), k * size));
      return tf.tensor4d(out, [idx.length, ...shape]);
    },
  };
}

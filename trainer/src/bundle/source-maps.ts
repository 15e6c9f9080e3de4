import * as tf from '@tensorflow/tfjs-core';
import type { ProtoHead } from '../head/proto-head.ts';
import type { FeatureSource } from '../stages/sources.ts';

/**
 * Each prototype's distance map (H*W) on its own source image, from one pass
 * over the distinct source images.
 */
export function sourceDistanceMaps(
  head: ProtoHead,
  train: FeatureSource,
  sourceItems: number[],
  batchSize = 64,
): (Float32Array | null)[] {
  const m = head.numPrototypes;
  const [H, W] = train.shape;
  const HW = H * W;
  const out: (Float32Array | null)[] = new Array(m).fill(null);
  const byItem = new Map<number, number[]>();
  sourceItems.forEach((item, j) => {
    if (item < 0) return;
    byItem.set(item, [...(byItem.get(item) ?? []), j]);
  });
  const items = [...byItem.keys()];
  for (let s = 0; s < items.length; s += batchSize) {
    const idx = items.slice(s, s + batchSize);
    const t = tf.tidy(() =>
      head.distanceMaps(
        train.features(
          idx,
          idx.map(() => false),
          false,
        ),
      ),
    );
    const d = t.dataSync() as Float32Array;
    t.dispose();
    idx.forEach((item, b) => {
      for (const j of byItem.get(item)!) {
        const map = new Float32Array(HW);
        for (let p = 0; p < HW; p++) map[p] = d[(b * HW + p) * m + j];
        out[j] = map;
      }
    });
  }
  return out;
}

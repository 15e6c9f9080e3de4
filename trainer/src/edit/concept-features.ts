/**
 * Resolve an edit's concept patches (image id + feature-grid cell) to the fixed
 * backbone's features of those cells, and to the dataset items they lie on.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ConceptPatch } from '@protoatlas/shared';
import type { DatasetItem } from '../data/types.ts';
import type { ConceptPatches } from '../stages/forget-concepts.ts';
import type { FeatureSource } from '../stages/sources.ts';

export interface SplitFeatures {
  name: string;
  items: DatasetItem[];
  source: FeatureSource;
}

export interface ResolvedPatch extends ConceptPatch {
  split: string;
  item: number;
}

/** Find each patch's image in the given splits (first match wins); unknown image ids are an error naming them. */
export function resolvePatches(patches: ConceptPatch[], splits: SplitFeatures[], what: string): ResolvedPatch[] {
  const index = new Map<string, { split: string; item: number }>();
  for (const s of splits) s.items.forEach((it, i) => index.has(it.id) || index.set(it.id, { split: s.name, item: i }));
  const missing = patches.filter((p) => !index.has(p.imageId)).map((p) => p.imageId);
  if (missing.length) {
    const shown = [...new Set(missing)].slice(0, 5).join(', ');
    throw new Error(
      `${what}: ${missing.length} patch(es) name images that are not in the dataset (${shown}); pass --data <the ` +
        `dataset the model was trained on>`,
    );
  }
  return patches.map((p) => ({ ...p, ...index.get(p.imageId)! }));
}

/** Backbone features [n, D] of the resolved patches, with each image's class. */
export function patchFeatures(patches: ResolvedPatch[], splits: SplitFeatures[]): ConceptPatches {
  const bySplit = new Map(splits.map((s) => [s.name, s]));
  const first = splits[0].source;
  const [, W, D] = first.shape;
  const features = new Float32Array(patches.length * D);
  const classes = new Int32Array(patches.length);
  patches.forEach((p, k) => {
    const s = bySplit.get(p.split)!;
    const t = tf.tidy(() => s.source.features([p.item], [false], false));
    const map = t.dataSync() as Float32Array;
    t.dispose();
    const off = (p.row * W + p.col) * D;
    features.set(map.subarray(off, off + D), k * D);
    classes[k] = s.source.labels[p.item];
  });
  return { n: patches.length, features, classes };
}

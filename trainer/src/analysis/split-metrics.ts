import { relative } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { activationBox, singleMap } from '@protoatlas/shared';
import { readSyntheticManifest } from '../data/synthetic-manifest.ts';
import type { Dataset, DatasetItem } from '../data/types.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import type { FeatureSource } from '../stages/sources.ts';
import { ImageCache } from '../data/image-cache.ts';
import type { ModelRunner } from './model-runner.ts';
import { classPurity, nearestPatches } from '../stages/nearest-patches.ts';
import { partMetricsWhereAnnotated, syntheticPartCoverage, type PrototypeBox } from './part-metrics.ts';

export interface SplitExplanationMetrics {
  /** Mean share, over live prototypes, of their k nearest patches in this split that come from their class. */
  purity: number | null;
  k: number;
  /** Huang et al. 2023 on this split's images (needs CUB part annotations). */
  consistency: number | null;
  stability: number | null;
  /** 95% intervals of consistency and stability across prototypes (null without part annotations). */
  interval95: { consistency: [number, number]; stability: [number, number] } | null;
  /** Synthetic birds: share of (prototype, own-class image) pairs whose box covers a true class part. */
  partCoverage: number | null;
  notes: string[];
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/** Explanation quality measured on one split, next to its accuracy. */
export async function splitExplanationMetrics(a: {
  head: ProtoHead;
  source: FeatureSource;
  items: DatasetItem[];
  dataset: Dataset;
  runner: ModelRunner;
  pruned: boolean[];
  k?: number;
  quiet?: boolean;
}): Promise<SplitExplanationMetrics> {
  const { head, source, items } = a;
  const k = a.k ?? 5;
  const notes: string[] = [];
  const hits = nearestPatches(head, source, k, { quiet: a.quiet, label: 'nearest patches' });
  const purity = mean(
    classPurity(hits, head.protoClass, source.labels).filter((p, j) => !a.pruned[j] && !Number.isNaN(p)),
  );

  let consistency: number | null = null;
  let stability: number | null = null;
  let interval95: SplitExplanationMetrics['interval95'] = null;
  const r = await partMetricsWhereAnnotated(a.runner, a.dataset.root, items, { pruned: a.pruned, quiet: a.quiet });
  if (r) {
    consistency = r.consistency;
    stability = r.stability;
    interval95 = r.interval95;
  } else
    notes.push('consistency/stability need part annotations (CUB parts/part_locs.txt): not available for this dataset');

  let partCoverage: number | null = null;
  if (a.dataset.layout === 'synthetic') {
    const manifest = await readSyntheticManifest(a.dataset.root);
    const [H, W] = source.shape;
    const HW = H * W;
    const m = head.numPrototypes;
    const cache = new ImageCache();
    const boxes: PrototypeBox[] = [];
    for (let s = 0; s < source.n; s += 64) {
      const idx = Array.from({ length: Math.min(64, source.n - s) }, (_, i) => s + i);
      const t = tf.tidy(() =>
        head.distanceMaps(
          source.features(
            idx,
            idx.map(() => false),
            false,
          ),
        ),
      );
      const d = t.dataSync() as Float32Array;
      t.dispose();
      for (const [b, i] of idx.entries()) {
        const size = await cache.size(items[i]);
        const imageKey = relative(a.dataset.root, items[i].path).split('\\').join('/');
        for (let j = 0; j < m; j++) {
          if (a.pruned[j] || head.protoClass[j] !== source.labels[i]) continue;
          const map = new Float32Array(HW);
          for (let p = 0; p < HW; p++) map[p] = d[(b * HW + p) * m + j];
          boxes.push({
            prototype: j,
            classId: head.protoClass[j],
            imageKey,
            box: activationBox(singleMap(map, H, W), 0, size.width, size.height, { eps: head.epsilon }),
          });
        }
      }
    }
    if (boxes.length) partCoverage = syntheticPartCoverage(manifest, boxes).coverage;
  }
  return { purity, k, consistency, stability, interval95, partCoverage, notes };
}

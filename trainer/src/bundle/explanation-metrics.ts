import { relative } from 'node:path';
import { activationBox, singleMap, type Box } from '@protoatlas/shared';
import { ModelRunner } from '../analysis/model-runner.ts';
import { classPurity, type PatchHit } from '../analysis/nearest-patches.ts';
import { partMetricsWhereAnnotated, syntheticPartCoverage, type PartMetricsResult, type PrototypeBox } from '../analysis/part-metrics.ts';
import { readSyntheticManifest } from '../data/synthetic-manifest.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import type { TrainConfig } from '../run/config.ts';
import type { PreparedData } from '../run/prepare-data.ts';
import type { PrototypeSource } from '../run/model-file.ts';
import { ImageCache } from './image-cache.ts';

export interface ExplanationMetrics {
  summary: {
    purity: number | null;
    consistency: number | null;
    stability: number | null;
    partCoverage: number | null;
    measuredOn: { split: 'val' | 'metrics'; images: number } | null;
    interval95: { consistency: [number, number]; stability: [number, number] } | null;
  };
  purityPerPrototype: number[];
  parts: PartMetricsResult | null;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/**
 * The explanation-quality figures that go next to accuracy: purity of the
 * nearest training patches; Huang et al.'s consistency and stability on the
 * validation split where part annotations exist (CUB); on the synthetic birds,
 * the share of prototype boxes covering a true class part.
 */
export async function computeExplanationMetrics(a: {
  head: ProtoHead;
  data: PreparedData;
  config: TrainConfig;
  dataRoot: string;
  prototypes: PrototypeSource[];
  sourceItem: number[];
  srcMaps: (Float32Array | null)[];
  trainHits: PatchHit[][];
  pruned: boolean[];
  partMetrics: boolean;
  quiet?: boolean;
}): Promise<ExplanationMetrics> {
  const { head, data } = a;
  const train = data.sources.train!;
  const purityPerPrototype = classPurity(a.trainHits, head.protoClass, train.labels);
  const purity = mean(purityPerPrototype.filter((p, j) => !a.pruned[j] && !Number.isNaN(p)));

  let parts: PartMetricsResult | null = null;
  // The held-out metrics split when the run has one: validation images also drove choices (best epoch, pruning).
  const split = data.itemsBySplit.metrics.length ? 'metrics' : 'val';
  const items = data.itemsBySplit[split];
  if (a.partMetrics && items.length) {
    const runner = new ModelRunner(head, { frozen: data.frozenBackbone, trainable: data.trainableBackbone });
    parts = await partMetricsWhereAnnotated(runner, data.dataset.root, items, { pruned: a.pruned, quiet: a.quiet });
  }

  let partCoverage: number | null = null;
  if (data.dataset.layout === 'synthetic') {
    const manifest = await readSyntheticManifest(data.dataset.root);
    const cache = new ImageCache();
    const [H, W] = data.featureShape;
    const boxes: PrototypeBox[] = [];
    for (let j = 0; j < a.sourceItem.length; j++) {
      const map = a.srcMaps[j];
      if (a.pruned[j] || a.sourceItem[j] < 0 || !map) continue;
      const item = data.itemsBySplit.train[a.sourceItem[j]];
      const size = await cache.size(item);
      const box: Box = activationBox(singleMap(map, H, W), 0, size.width, size.height);
      boxes.push({ prototype: j, classId: head.protoClass[j], imageKey: relative(data.dataset.root, item.path).split('\\').join('/'), box });
    }
    if (boxes.length) partCoverage = syntheticPartCoverage(manifest, boxes).coverage;
  }
  return {
    summary: {
      purity,
      consistency: parts?.consistency ?? null,
      stability: parts?.stability ?? null,
      partCoverage,
      measuredOn: parts ? { split, images: parts.images } : null,
      interval95: parts ? parts.interval95 : null,
    },
    purityPerPrototype,
    parts,
  };
}

import { relative } from 'node:path';
import { boxCoverage, type Box } from '@protoatlas/shared';
import { ModelRunner } from '../analysis/model-runner.ts';
import {
  partMetricsWhereAnnotated,
  syntheticPartCoverage,
  type PrototypeBox,
  type PrototypePartMetrics,
} from '../analysis/part-metrics.ts';
import { readSyntheticManifest } from '../data/synthetic-manifest.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import type { PreparedData } from '../model/prepare-data.ts';

/** One prototype's part metrics, as the manifest stores them. */
export type PrototypeParts = Omit<PrototypePartMetrics, 'prototype' | 'classIndex'>;

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
  /** Per prototype: part metrics (null: not evaluated, e.g. pruned or no part annotations). */
  partsPerPrototype: (PrototypeParts | null)[];
  /**
   * Synthetic data, per prototype: the largest share of its source box inside one
   * bird part's box (head, body, ...); undefined: not judged.
   */
  birdShare: (number | undefined)[];
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/**
 * The explanation-quality figures that go next to accuracy: purity of the
 * nearest training patches; Huang et al.'s consistency and stability on the
 * validation split where part annotations exist (CUB); on the synthetic birds,
 * the share of prototype boxes covering a true class part.
 *
 * `known` carries per-prototype part metrics from a parent bundle for
 * prototypes that did not change (an edit that only dropped or relabelled some):
 * only the others are evaluated again, on the same split; the bootstrap
 * intervals, which need every image's observations, are then not recomputed (null).
 */
export async function computeExplanationMetrics(a: {
  head: ProtoHead;
  data: PreparedData;
  /** Per prototype: its source training item and box in that image's pixels (null: no source). */
  sourceBoxes: ({ item: number; box: Box } | null)[];
  /** Per prototype: the classes of its nearest training patches. */
  neighbourClasses: number[][];
  pruned: boolean[];
  partMetrics: boolean;
  known?: {
    parts: (PrototypeParts | null | undefined)[];
    measuredOn: { split: 'val' | 'metrics'; images: number } | null;
  };
  quiet?: boolean;
}): Promise<ExplanationMetrics> {
  const { head, data } = a;
  const m = head.numPrototypes;
  const purityPerPrototype = a.neighbourClasses.map((cs, j) =>
    cs.length ? cs.filter((c) => c === head.protoClass[j]).length / cs.length : NaN,
  );
  const purity = mean(purityPerPrototype.filter((p, j) => !a.pruned[j] && !Number.isNaN(p)));

  const partsPerPrototype: (PrototypeParts | null)[] = new Array(m).fill(null);
  let evaluatedParts = false;
  let measuredOn: ExplanationMetrics['summary']['measuredOn'] = null;
  let interval95: ExplanationMetrics['summary']['interval95'] = null;
  // The held-out metrics split when the run has one: validation images also drove choices (best epoch, pruning).
  const split = data.itemsBySplit.metrics.length ? 'metrics' : 'val';
  const splitItems = data.itemsBySplit[split];
  if (a.partMetrics && splitItems.length) {
    const known = a.known?.parts;
    const todo = Array.from({ length: m }, (_, j) => !a.pruned[j] && known?.[j] === undefined);
    known?.forEach((p, j) => {
      if (p !== undefined && !a.pruned[j]) partsPerPrototype[j] = p;
    });
    evaluatedParts = partsPerPrototype.some((p) => p !== null);
    if (evaluatedParts) measuredOn = a.known?.measuredOn ?? null;
    if (todo.some(Boolean)) {
      // Only the images of the classes still to evaluate (each prototype is judged on its own class).
      const classes = new Set(head.protoClass.filter((_, j) => todo[j]));
      const items = known ? splitItems.filter((it) => classes.has(it.label)) : splitItems;
      const runner = new ModelRunner(head, { frozen: data.frozenBackbone, trainable: data.trainableBackbone });
      const parts = items.length
        ? await partMetricsWhereAnnotated(runner, data.dataset.root, items, {
            pruned: todo.map((t) => !t),
            quiet: a.quiet,
          })
        : null;
      if (parts) {
        evaluatedParts = true;
        for (const p of parts.perPrototype) {
          const { prototype, classIndex: _class, ...stored } = p;
          partsPerPrototype[prototype] = stored;
        }
        if (!known) {
          measuredOn = { split, images: parts.images };
          interval95 = parts.interval95;
        }
      }
    }
  }
  const live = partsPerPrototype.filter((p, j): p is PrototypeParts => p !== null && !a.pruned[j]);
  const consistency = evaluatedParts && live.length ? live.filter((p) => p.consistent).length / live.length : null;
  const stabilities = live.map((p) => p.stability).filter((s) => !Number.isNaN(s));
  const stability = evaluatedParts ? mean(stabilities) : null;

  let partCoverage: number | null = null;
  const birdShare: (number | undefined)[] = new Array(m).fill(undefined);
  if (data.dataset.layout === 'synthetic') {
    const manifest = await readSyntheticManifest(data.dataset.root);
    const boxes: PrototypeBox[] = [];
    a.sourceBoxes.forEach((s, j) => {
      if (a.pruned[j] || !s) return;
      const item = data.itemsBySplit.train[s.item];
      boxes.push({
        prototype: j,
        classId: head.protoClass[j],
        imageKey: relative(data.dataset.root, item.path).split('\\').join('/'),
        box: s.box,
      });
    });
    if (boxes.length) partCoverage = syntheticPartCoverage(manifest, boxes).coverage;
    for (const b of boxes) {
      const parts = Object.values(manifest.images[b.imageKey]?.parts ?? {}).filter(
        (q): q is [number, number, number, number] => q !== null,
      );
      birdShare[b.prototype] = Math.max(0, ...parts.map(([x, y, w, h]) => boxCoverage({ x, y, w, h }, b.box)));
    }
  }
  return {
    summary: { purity, consistency, stability, partCoverage, measuredOn, interval95 },
    purityPerPrototype,
    partsPerPrototype,
    birdShare,
  };
}

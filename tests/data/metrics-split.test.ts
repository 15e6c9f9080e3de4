import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from '../../trainer/src/data/errors.ts';
import { loadDataset } from '../../trainer/src/data/load-dataset.ts';
import { consistencyScore, prototypeIntervals, type PartObservation } from '../../trainer/src/analysis/part-metrics.ts';
import { cleanup, tempDir, writeSolid } from './fixtures.ts';

describe('the metrics split (data.metricsPerClass)', () => {
  let root = '';
  beforeAll(async () => {
    root = await tempDir('metrics-split-');
    // 3 classes x 9 images, one folder per class.
    for (let c = 0; c < 3; c++)
      for (let k = 0; k < 9; k++) await writeSolid(join(root, `class${c}`, `${k}.png`), 4, 4, [c * 50, k * 20, 0]);
  });
  afterAll(() => cleanup(root));

  it('holds out metricsPerClass further images per class, disjoint from train and val, and leaves val unchanged', async () => {
    const plain = await loadDataset(root, { valPerClass: 2, seed: 3 });
    const ds = await loadDataset(root, { valPerClass: 2, metricsPerClass: 4, seed: 3 });
    expect(ds.splits.val.map((i) => i.id)).toEqual(plain.splits.val.map((i) => i.id));
    for (let c = 0; c < 3; c++) {
      expect(ds.splits.metrics.filter((i) => i.label === c)).toHaveLength(4);
      expect(ds.splits.train.filter((i) => i.label === c)).toHaveLength(3);
    }
    const ids = [...ds.splits.train, ...ds.splits.val, ...ds.splits.metrics].map((i) => i.id);
    expect(new Set(ids).size).toBe(27);
    expect(plain.splits.metrics).toEqual([]);
  });

  it('names metricsPerClass when a class is too small to hold the images out', async () => {
    await expect(loadDataset(root, { valPerClass: 2, metricsPerClass: 7, seed: 3 })).rejects.toThrow(DatasetError);
    await expect(loadDataset(root, { valPerClass: 2, metricsPerClass: 7, seed: 3 })).rejects.toThrow(/metricsPerClass/);
  });
});

describe('intervals of consistency and stability across prototypes', () => {
  const obs = (hit: number): PartObservation => ({ hits: Uint8Array.from([hit, 0]), visible: Uint8Array.from([1, 1]) });
  it('are Wilson score intervals for consistency and mean +- 1.96 standard errors for stability', () => {
    // 10 prototypes with 5 images each: 4 always on part 0 (consistent), 6 never on a part; prototype 9 unevaluated.
    const observations = Array.from({ length: 11 }, (_, j) =>
      j === 10 ? [] : Array.from({ length: 5 }, () => obs(j < 4 ? 1 : 0)),
    );
    const clean = observations.map((list) => list.map((o) => o.hits));
    // Noise flips one image of prototypes 0 and 1: their stability is 4/5, the others 1.
    const noisy = clean.map((list, j) => list.map((h, k) => (j < 2 && k === 0 ? Uint8Array.from([1 - h[0], 0]) : h)));
    const r = prototypeIntervals(observations, noisy);
    expect(consistencyScore(observations)).toBeCloseTo(0.4, 10);
    // Wilson, n = 10, p = 0.4, z = 1.96: 0.1682 .. 0.6873.
    expect(r.consistency[0]).toBeCloseTo(0.1682, 3);
    expect(r.consistency[1]).toBeCloseTo(0.6873, 3);
    // Stability values: two of 0.8, eight of 1; mean 0.96, sd 0.08433, se 0.02667.
    expect(r.stability[0]).toBeCloseTo(0.96 - (1.96 * 0.0843274) / Math.sqrt(10), 4);
    expect(r.stability[1]).toBeCloseTo(Math.min(1, 0.96 + (1.96 * 0.0843274) / Math.sqrt(10)), 4);
  });
});

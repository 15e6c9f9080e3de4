import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from '../../trainer/src/data/errors.ts';
import { loadDataset } from '../../trainer/src/data/load-dataset.ts';
import { bootstrapIntervals, consistencyScore, type PartObservation } from '../../trainer/src/analysis/part-metrics.ts';
import { cleanup, tempDir, writeSolid } from './fixtures.ts';

describe('the metrics split (data.metricsPerClass)', () => {
  let root = '';
  beforeAll(async () => {
    root = await tempDir('metrics-split-');
    // 3 classes x 9 images, one folder per class.
    for (let c = 0; c < 3; c++) for (let k = 0; k < 9; k++) await writeSolid(join(root, `class${c}`, `${k}.png`), 4, 4, [c * 50, k * 20, 0]);
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

describe('bootstrap intervals of consistency and stability', () => {
  const obs = (hit: number): PartObservation => ({ hits: Uint8Array.from([hit, 0]), visible: Uint8Array.from([1, 1]) });
  it('collapse to the point value when every image agrees, and widen when images disagree', () => {
    // Class 0: prototype 0 always on part 0 (consistent), prototype 1 never on a part; class 1: prototype 2 on part 0 in 4 of 5 images.
    const observations = [[obs(1), obs(1), obs(1)], [obs(0), obs(0), obs(0)], [obs(1), obs(1), obs(1), obs(1), obs(0)]];
    const clean = observations.map((list) => list.map((o) => o.hits));
    const protoClass = Int32Array.from([0, 0, 1]);
    const same = bootstrapIntervals(observations, clean, protoClass, { replicates: 100 });
    expect(same.stability).toEqual([1, 1]);
    // The point value is 2/3 (prototypes 0 and 2 consistent at 80%); redrawn images of class 1 fall below 4 in 5 often.
    expect(consistencyScore(observations)).toBeCloseTo(2 / 3, 10);
    expect(same.consistency[0]).toBeCloseTo(1 / 3, 10);
    expect(same.consistency[1]).toBeCloseTo(2 / 3, 10);
    // Noise flips prototype 0's part in one image: stability below 1 in some redraws.
    const noisy = clean.map((list, j) => list.map((h, k) => (j === 0 && k === 0 ? Uint8Array.from([0, 0]) : h)));
    const shaken = bootstrapIntervals(observations, noisy, protoClass, { replicates: 200 });
    expect(shaken.stability[0]).toBeLessThan(1 - 1 / 9);
    expect(shaken.stability[1]).toBe(1);
  });
});

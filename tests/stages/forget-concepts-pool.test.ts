/**
 * The forgetting fine-tune on training's gradient threads (cached features in
 * shared memory): each batch's data term is split over the threads, so the
 * updates are the one-thread updates up to the rounding of summing two halves.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../trainer/src/core/rng.ts';
import { forgetConcepts, forgettingLoss, type ForgetEpoch } from '../../trainer/src/stages/forget-concepts.ts';
import { GradPool } from '../../trainer/src/stages/grad-pool.ts';
import { sharedFeatureSource } from '../../trainer/src/stages/sources.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { randomStores, tinyHead } from '../support/shared-features.ts';

const N = 12;
const store = randomStores(N, 'float32', 5);
const orig = store();
const flip = store();
const keep = Int32Array.from({ length: N }, (_, i) => i);
const labels = Int32Array.from(keep, (i) => i % 3);
const loss = { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 };
// The forbidden concept: two cells of item 0.
const forbidden = {
  n: 2,
  features: Float32Array.from([...orig.data.subarray(0, 6)].concat([...orig.data.subarray(24, 30)]).map(Number)),
  classes: Int32Array.from([0, 0]),
};

async function forget(threads: number): Promise<{
  log: ForgetEpoch[];
  start: Float32Array;
  protos: Float32Array;
  after: number;
}> {
  const source = sharedFeatureSource({ orig, flip, keep, labels });
  const head = tinyHead();
  const pool =
    threads > 1
      ? await GradPool.start({ threads, backbone: null, sources: { train: source }, head, backend: 'wasm' })
      : null;
  const start = head.prototypes.dataSync().slice() as Float32Array;
  try {
    const log = await forgetConcepts({
      head,
      train: source,
      loss,
      forbidden,
      keep: null,
      removed: new Array(6).fill(false),
      options: { steps: 8, batchSize: 6, lr: { addOn: 1e-2, prototypes: 1e-2 }, forget: 1, remember: 0 },
      rng: new Rng(3),
      quiet: true,
      pool,
    });
    const protos = head.prototypes.dataSync().slice() as Float32Array;
    const after = forgettingLoss(head, forbidden).dataSync()[0];
    head.dispose();
    return { log, start, protos, after };
  } finally {
    await pool?.close();
  }
}

describe('forgetting fine-tune on gradient threads', () => {
  beforeAll(async () => {
    await initBackend('wasm', { quiet: true });
  });
  afterAll(() => tf.disposeVariables());

  it('makes the one-thread updates with 2 threads (up to rounding)', async () => {
    const one = await forget(1);
    const two = await forget(2);
    expect(one.log.reduce((a, e) => a + e.steps, 0)).toBe(8);
    expect(two.log.map((e) => e.steps)).toEqual(one.log.map((e) => e.steps));
    // The prototypes moved (the test does not compare two untouched heads).
    expect(Math.max(...one.protos.map((v, i) => Math.abs(v - one.start[i])))).toBeGreaterThan(1e-3);
    for (const [a, b] of [
      [one.log[0].loss, two.log[0].loss],
      [one.log[0].crossEntropy, two.log[0].crossEntropy],
      [one.log[0].forgetting, two.log[0].forgetting],
      [one.log[0].trainAccuracy, two.log[0].trainAccuracy],
    ])
      expect(b).toBeCloseTo(a, 4);
    const maxDiff = Math.max(...one.protos.map((v, i) => Math.abs(v - two.protos[i])));
    expect(maxDiff).toBeLessThan(1e-4);
    expect(two.after).toBeCloseTo(one.after, 3);
  }, 120_000);
});

import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFeatureStore } from '../../trainer/src/backbone/feature-store.ts';
import { Adam } from '../../trainer/src/optim/adam.ts';
import { parseConfig } from '../../trainer/src/config/config.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { GradPool, resolveTrainThreads } from '../../trainer/src/stages/grad-pool.ts';
import { phaseGroups, trainPrototypeEpoch, type EpochStats } from '../../trainer/src/stages/prototype-phase.ts';
import { computeSimilarities } from '../../trainer/src/stages/last-layer.ts';
import { predict } from '../../trainer/src/stages/predict.ts';
import { pooledFeatures } from '../../trainer/src/stages/linear-probe.ts';
import { nearestPatches, nearestPatchesOver } from '../../trainer/src/stages/nearest-patches.ts';
import { pushPrototypes } from '../../trainer/src/stages/push.ts';
import { cachedSource, sharedFeatureSource, type SharedStore } from '../../trainer/src/stages/sources.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { randomStores, TINY_MAP, tinyHead } from '../support/shared-features.ts';

// 15 cached feature maps of 3x3x6 (float16, as float backbones store them), one unreadable item left out.
const N = 15;
const shape = TINY_MAP;
const store = randomStores(N, 'float16', 4);
const orig = store();
const flip = store();
const copies = [store(), store()];
const keep = Int32Array.from({ length: N - 1 }, (_, i) => (i < 6 ? i : i + 1));
const labels = Int32Array.from(keep, (i) => i % 3);
const loss = { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 };
const phase = parseConfig(
  {
    preset: 't',
    data: {},
    backbone: { kind: 'small-cnn' },
    head: {},
    loss,
    warmup: {
      epochs: 2,
      batchSize: 10,
      microBatch: 3,
      inputDropout: 0.2,
      lr: { features: 0, addOn: 3e-3, prototypes: 3e-3, lastLayer: 0 },
    },
    joint: { epochs: 0 },
    push: {},
    lastLayer: {},
  },
  'test',
).warmup;

async function train(threads: number, mode: 'warmup' | 'tied' | 'copies') {
  const augmented = mode === 'copies' ? copies : undefined;
  const source = sharedFeatureSource({ orig, flip, augmented, keep, labels });
  const head = tinyHead();
  const pool =
    threads > 1
      ? await GradPool.start({ threads, backbone: null, sources: { train: source }, head, backend: 'wasm' })
      : null;
  const rng = new Rng(9);
  const stats: EpochStats[] = [];
  try {
    if (mode === 'tied')
      head.tieToPatches(Float32Array.from({ length: head.numPrototypes * 6 }, (_, i) => (i % 7) / 7));
    const run = mode === 'tied' ? { ...phase, lr: { features: 0, addOn: 2e-3, prototypes: 0, lastLayer: 0 } } : phase;
    const opt = new Adam(phaseGroups(run, head, null));
    for (let e = 0; e < 2; e++) {
      stats.push(
        await trainPrototypeEpoch({
          label: 't',
          phase: run,
          head,
          source,
          loss,
          optimizer: opt,
          rng,
          quiet: true,
          backboneTraining: false,
          pool: pool && { pool, backbone: null },
        }),
      );
    }
    if (mode === 'tied') head.syncTiedPrototypes();
    opt.dispose();
  } finally {
    await pool?.close();
  }
  const weights = head.getWeights();
  head.dispose();
  return { stats, weights };
}

describe('gradient worker threads over cached features (frozen backbone)', () => {
  beforeAll(async () => {
    await initBackend('wasm', { quiet: true });
  });
  afterAll(() => tf.disposeVariables());

  it('read the same feature maps as a plain cached source, flipped copies and left-out items included', () => {
    const shared = sharedFeatureSource({ orig, flip, keep, labels });
    const view = (s: SharedStore) => {
      const st = createFeatureStore(s.spec, s.data);
      return { n: keep.length, shape, batch: (idx: number[]) => st.batch(idx.map((i) => keep[i])) };
    };
    const plain = cachedSource(view(orig), view(flip), labels);
    const idx = [0, 5, 6, 13];
    const flipped = [false, true, false, true];
    const a = tf.tidy(() => shared.features(idx, flipped, false).dataSync());
    const b = tf.tidy(() => plain.features(idx, flipped, false).dataSync());
    expect(Array.from(a)).toEqual(Array.from(b));
    // Item 6 of the source is store item 7 (item 6 was left out).
    const direct = createFeatureStore(orig.spec, orig.data).get(7);
    expect(Array.from(a.subarray(2 * 54, 3 * 54))).toEqual(Array.from(direct));
    expect(orig.data.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it('use one thread per core on wasm when the features are in shared memory', () => {
    const shared = sharedFeatureSource({ orig, flip, keep, labels });
    expect(resolveTrainThreads('auto', 'wasm', null, shared).threads).toBeGreaterThanOrEqual(1);
    expect(resolveTrainThreads(2, 'wasm', null, shared)).toEqual({ threads: 2, why: 'trainThreads in the config' });
    const unshared = cachedSource({ n: 1, shape, batch: () => new Float32Array(54) }, null, new Int32Array(1));
    expect(resolveTrainThreads(2, 'wasm', null, unshared).threads).toBe(1);
  });

  it('pick each training item from its plain or augmented copies by its seed', () => {
    const shared = sharedFeatureSource({ orig, flip, augmented: copies, keep, labels });
    expect(shared.canAugment).toBe(true);
    expect(shared.cachedCopies).toBe(2);
    const idx = [0, 5, 6, 13, 2];
    const flipped = [false, true, true, false, true];
    // seed % 3: 0 = the plain view (mirrored when flipped), 1 = copy 1, 2 = copy 2.
    const seeds = [3, 6, 1, 8, 4];
    const got = tf.tidy(() => shared.features(idx, flipped, false, seeds).dataSync());
    const want = [orig, flip, copies[0], copies[1], copies[0]].map((s, k) =>
      Array.from(createFeatureStore(s.spec, s.data).get(keep[idx[k]])),
    );
    want.forEach((w, k) => expect(Array.from(got.subarray(k * 54, (k + 1) * 54)), `item ${k}`).toEqual(w));
    // Without seeds (prediction, push) the copies are never read.
    const plain = tf.tidy(() => shared.features(idx, flipped, false).dataSync());
    const noCopies = sharedFeatureSource({ orig, flip, keep, labels });
    expect(Array.from(plain)).toEqual(Array.from(tf.tidy(() => noCopies.features(idx, flipped, false).dataSync())));
  });

  it("compute similarities, predictions and pooled features over the threads, bit for bit one thread's, with the head's current weights", async () => {
    const source = sharedFeatureSource({ orig, flip, keep, labels });
    const head = tinyHead();
    // Another head: the workers must evaluate the weights they are sent, not the ones they started with.
    const pool = await GradPool.start({
      threads: 3,
      backbone: null,
      sources: { train: source },
      head,
      backend: 'wasm',
    });
    try {
      expect(pool.sourceName(source)).toBe('train');
      const other = sharedFeatureSource({ orig, flip, keep, labels });
      expect(pool.sourceName(other)).toBeNull();
      for (const tied of [false, true]) {
        if (tied) head.tieToPatches(Float32Array.from({ length: head.numPrototypes * 6 }, (_, i) => (i % 5) / 5));
        head.lastLayer.assign(tf.randomNormal(head.lastLayer.shape, 0, 1, 'float32', tied ? 3 : 4));
        // Chunks of 2 items: 14 items make 7 chunks, spread over the 3 threads.
        const one = await computeSimilarities(head, source, { flip: true, quiet: true, batchSize: 2 });
        const many = await computeSimilarities(head, source, { flip: true, quiet: true, batchSize: 2, pool });
        expect(one.n).toBe(28);
        expect(Array.from(many.labels)).toEqual(Array.from(one.labels));
        expect(Array.from(many.sims)).toEqual(Array.from(one.sims));
        // Mirrored copies differ from the originals.
        expect(Array.from(one.sims.subarray(0, 6))).not.toEqual(Array.from(one.sims.subarray(14 * 6, 15 * 6)));
        const p1 = await predict(head, source);
        const p3 = await predict(head, source, pool);
        expect(Array.from(p3.logits)).toEqual(Array.from(p1.logits));
      }
      // The baseline's pooled features (originals, then mirrored copies) too.
      const g1 = await pooledFeatures(source, { flip: true, quiet: true, batchSize: 2 });
      const g3 = await pooledFeatures(source, { flip: true, quiet: true, batchSize: 2, pool });
      expect(g3.n).toBe(28);
      expect(Array.from(g3.x)).toEqual(Array.from(g1.x));
      expect(Array.from(g3.labels)).toEqual(Array.from(g1.labels));
      expect(Array.from(g1.x.subarray(0, 6))).not.toEqual(Array.from(g1.x.subarray(14 * 6, 15 * 6)));
    } finally {
      await pool.close();
      head.dispose();
    }
  });

  it('push and search nearest patches over the threads with the results of one thread', async () => {
    const source = sharedFeatureSource({ orig, flip, keep, labels });
    const pool = await GradPool.start({
      threads: 3,
      backbone: null,
      sources: { train: source },
      head: tinyHead(),
      backend: 'wasm',
    });
    try {
      // Item 4 is nearest for some prototype; banning its patches must move that prototype elsewhere.
      const exclude = new Map([[4, new Set([0, 1, 2, 3, 4, 5, 6, 7, 8])]]);
      for (const ban of [undefined, exclude]) {
        const one = tinyHead();
        const many = tinyHead();
        const r1 = await pushPrototypes(one, source, { quiet: true, batchSize: 2, exclude: ban });
        const r3 = await pushPrototypes(many, source, { quiet: true, batchSize: 2, exclude: ban, pool });
        expect(r3).toEqual(r1);
        expect(Array.from(many.prototypes.dataSync())).toEqual(Array.from(one.prototypes.dataSync()));
        if (ban) expect(r1.some((r) => r.item === 4)).toBe(false);
        // Each class's prototypes come from more than one thread's chunks.
        expect(new Set(r1.map((r) => Math.floor(r.item / 2) % 3)).size).toBeGreaterThan(1);
        const excludeNearest = r1.map((r, j) => (j % 2 ? { item: r.item, patch: -1 } : null));
        const h1 = nearestPatches(one, source, 4, { quiet: true, batchSize: 2, exclude: excludeNearest });
        const h3 = await nearestPatchesOver(many, source, 4, {
          pool,
          quiet: true,
          batchSize: 2,
          exclude: excludeNearest,
        });
        expect(h3).toEqual(h1);
        expect(h1.every((list) => list.length === 4)).toBe(true);
        one.dispose();
        many.dispose();
      }
    } finally {
      await pool.close();
    }
  });

  it('train on the cached copies: the updates differ from training without them', async () => {
    const without = await train(1, 'warmup');
    const withCopies = await train(1, 'copies');
    expect(withCopies.stats[0].loss).not.toBe(without.stats[0].loss);
  });

  it.each(['warmup', 'tied', 'copies'] as const)(
    'make the same %s updates as one thread, bit for bit, with 2 and 3 threads',
    async (mode) => {
      const one = await train(1, mode);
      expect(one.stats[0].loss).toBeGreaterThan(0);
      for (const threads of [2, 3]) {
        const many = await train(threads, mode);
        many.stats.forEach((s, e) => expect(s.loss, `epoch ${e} loss, ${threads} threads`).toBe(one.stats[e].loss));
        for (const [name, t] of one.weights) {
          const other = many.weights.get(name)!.data;
          let diff = 0;
          t.data.forEach((v, i) => (diff = Math.max(diff, Math.abs(other[i] - v))));
          expect(diff, `${name} with ${threads} threads`).toBe(0);
        }
      }
      // Training moved the add-on weights.
      const fresh = tinyHead();
      const [name, w0] = [...fresh.getWeights()][0];
      expect(one.weights.get(name)!.data.some((v, i) => v !== w0.data[i])).toBe(true);
      fresh.dispose();
    },
  );
});

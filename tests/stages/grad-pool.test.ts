import * as tf from '@tensorflow/tfjs-core';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createSmallCnn } from '../../trainer/src/backbone/small-cnn.ts';
import { PAPER_AUGMENT } from '../../trainer/src/data/augment.ts';
import { packImages } from '../../trainer/src/data/shared-images.ts';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Adam } from '../../trainer/src/optim/adam.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { GradPool } from '../../trainer/src/stages/grad-pool.ts';
import { phaseGroups, trainPrototypeEpoch, type EpochStats } from '../../trainer/src/stages/prototype-phase.ts';
import { sharedImageSource } from '../../trainer/src/stages/sources.ts';
import { snapshotFeatures } from '../../trainer/src/stages/feature-snapshot.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { PhaseConfigDefaults } from '../support/phase-defaults.ts';

const N = 14;
const SIZE = 16;
const imgRng = new Rng(5);
const images = packImages(
  Array.from({ length: N }, () => ({
    width: SIZE,
    height: SIZE,
    data: Uint8Array.from({ length: SIZE * SIZE * 3 }, () => imgRng.int(256)),
  })),
);
const labels = Int32Array.from({ length: N }, (_, i) => i % 3);
const cnnOptions = { inputSize: SIZE, channels: [4, 6], convsPerStage: 1 as const, seed: 2 };
const loss = { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 };
// Joint-stage learning rates, micro-batches of 2 and a last batch of 4 (14 = 10 + 4).
const phase = {
  ...PhaseConfigDefaults,
  batchSize: 10,
  microBatch: 2,
  inputDropout: 0.2,
  lr: { features: 1e-3, addOn: 3e-3, prototypes: 3e-3, lastLayer: 0 },
};

/** A one-prototype-per-class head over the small CNN's 6 channels. */
function smallHead(): ProtoHead {
  return new ProtoHead(
    {
      inputChannels: 6,
      addOn: [{ channels: 4, activation: 'sigmoid' }],
      numClasses: 3,
      prototypesPerClass: 1,
      incorrectClassWeight: -0.5,
    },
    new Rng(1),
  );
}

/**
 * Two epochs of joint training, or one of push-tune (prototypes tied to patches,
 * backbone in inference mode); `threads` > 1 spreads micro-batches over worker threads.
 */
async function train(threads: number, mode: 'joint' | 'tied') {
  const backbone = createSmallCnn(cnnOptions);
  const source = sharedImageSource(
    { images, labels, preprocess: backbone.preprocess, augment: PAPER_AUGMENT },
    backbone,
  );
  const head = new ProtoHead(
    {
      inputChannels: 6,
      addOn: [
        { channels: 5, activation: 'relu' },
        { channels: 4, activation: 'sigmoid' },
      ],
      numClasses: 3,
      prototypesPerClass: 2,
      incorrectClassWeight: -0.5,
    },
    new Rng(1),
  );
  const pool =
    threads > 1 ? await GradPool.start({ threads, backbone, sources: { train: source }, head, backend: 'wasm' }) : null;
  const rng = new Rng(9);
  const stats: EpochStats[] = [];
  try {
    if (mode === 'joint') {
      const opt = new Adam(phaseGroups(phase, head, backbone));
      for (let e = 0; e < 2; e++)
        stats.push(
          await trainPrototypeEpoch({
            label: 't',
            phase,
            head,
            source,
            // The orthogonality term reaches the workers too.
            loss: { ...loss, orthogonality: 0.1 },
            optimizer: opt,
            rng,
            quiet: true,
            pool: pool && { pool, backbone },
          }),
        );
      opt.dispose();
    } else {
      // Batch-norm moving statistics are the main thread's alone after joint epochs (see
      // grad-pool.ts), so the inference-mode phase is compared from the same start.
      head.tieToPatches(Float32Array.from({ length: head.numPrototypes * 6 }, (_, i) => (i % 7) / 7));
      const tune = { ...phase, lr: { features: 0, addOn: 2e-3, prototypes: 0, lastLayer: 0 } };
      const opt2 = new Adam(phaseGroups(tune, head, null));
      stats.push(
        await trainPrototypeEpoch({
          label: 't',
          phase: tune,
          head,
          source,
          loss,
          optimizer: opt2,
          rng,
          quiet: true,
          backboneTraining: false,
          pool: pool && { pool, backbone },
        }),
      );
      head.syncTiedPrototypes();
      opt2.dispose();
    }
  } finally {
    await pool?.close();
  }
  const trainable = new Set(backbone.model.trainableWeights.map((w) => w.originalName));
  const weights = new Map([...head.getWeights(), ...[...backbone.getWeights()].filter(([k]) => trainable.has(k))]);
  head.dispose();
  await backbone.dispose();
  return { stats, weights };
}

describe('gradient worker threads', () => {
  beforeAll(async () => {
    await initBackend('wasm', { quiet: true });
  });
  afterAll(() => tf.disposeVariables());

  it.each(['joint', 'tied'] as const)(
    'make the same %s updates as one thread, bit for bit, with 2 and 3 threads',
    async (mode) => {
      const one = await train(1, mode);
      expect(one.stats[0].loss).toBeGreaterThan(0);
      for (const threads of [2, 3]) {
        const many = await train(threads, mode);
        expect(many.stats).toHaveLength(mode === 'joint' ? 2 : 1);
        many.stats.forEach((s, e) => {
          expect(s.loss, `epoch ${e} loss, ${threads} threads`).toBe(one.stats[e].loss);
          expect(s.trainAccuracy).toBe(one.stats[e].trainAccuracy);
        });
        for (const [name, t] of one.weights) {
          const other = many.weights.get(name)!.data;
          let diff = 0;
          t.data.forEach((v, i) => (diff = Math.max(diff, Math.abs(other[i] - v))));
          expect(diff, `${name} with ${threads} threads`).toBe(0);
        }
      }
      if (mode === 'tied') return;
      // And joint training moved the backbone (the features group is really trained).
      const fresh = createSmallCnn(cnnOptions);
      const kernel = [...fresh.getWeights()].find(([k]) => k.endsWith('/kernel'))!;
      const moved = one.weights.get(kernel[0])!.data.some((v, i) => v !== kernel[1].data[i]);
      expect(moved).toBe(true);
      await fresh.dispose();
    },
  );

  it('snapshot eval-mode features across threads equal to the image source, mirrored copies included', async () => {
    const backbone = createSmallCnn(cnnOptions);
    const source = sharedImageSource(
      { images, labels, preprocess: backbone.preprocess, augment: PAPER_AUGMENT },
      backbone,
    );
    // Weights the workers do not start with: the snapshot must use the current ones.
    const tuned = new Map(
      [...backbone.getWeights()].map(([k, v]) => [
        k,
        { shape: v.shape, data: v.data.map((x, i) => x * 1.5 + (i % 3) * 0.01) },
      ]),
    );
    backbone.setWeights(tuned);
    const head = smallHead();
    const pool = await GradPool.start({ threads: 3, backbone, sources: { train: source }, head, backend: 'wasm' });
    try {
      await pool.setBackboneWeights(backbone);
      const snap = await snapshotFeatures(source, { name: 'train', flip: true, pool, quiet: true, chunk: 3 }); // 5 chunks on 3 threads
      expect(snap.n).toBe(N);
      expect(snap.canAugment).toBe(false);
      const items = Array.from({ length: N }, (_, i) => i);
      for (const mirrored of [false, true]) {
        const flips = items.map(() => mirrored);
        const want = tf.tidy(() => source.features(items, flips, false)).dataSync();
        const got = tf.tidy(() => snap.features(items, flips, false)).dataSync();
        expect(got.length).toBe(want.length);
        let diff = 0;
        want.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - got[i]))));
        expect(diff, mirrored ? 'mirrored' : 'original').toBe(0);
      }
      // Mirroring changes the features, so the second set is not a copy of the first.
      const a = tf.tidy(() => snap.features([0], [false], false)).dataSync();
      const b = tf.tidy(() => snap.features([0], [true], false)).dataSync();
      expect(a.some((v, i) => v !== b[i])).toBe(true);
    } finally {
      await pool.close();
      head.dispose();
      await backbone.dispose();
    }
  });

  it('close lets every worker finish its requests and exit on its own, without terminating it', async () => {
    const backbone = createSmallCnn(cnnOptions);
    const source = sharedImageSource({ images, labels, preprocess: backbone.preprocess, augment: null }, backbone);
    const head = smallHead();
    // Terminating a worker inside wasm or native code can abort the whole process.
    const terminate = vi.spyOn(Worker.prototype, 'terminate');
    const exits: number[] = [];
    const on = vi.spyOn(Worker.prototype, 'on');
    try {
      const pool = await GradPool.start({ threads: 3, backbone, sources: { train: source }, head, backend: 'wasm' });
      const workers = on.mock.contexts.filter((_w, i) => on.mock.calls[i][0] === 'exit') as Worker[];
      expect(workers).toHaveLength(2);
      for (const w of workers) w.on('exit', (code) => exits.push(code));
      await pool.setBackboneWeights(backbone);
      await pool.close();
      expect(terminate).not.toHaveBeenCalled();
      expect(exits).toEqual([0, 0]);
    } finally {
      terminate.mockRestore();
      on.mockRestore();
      head.dispose();
      await backbone.dispose();
    }
  });

  it('report a worker that cannot start, naming the cause', async () => {
    const backbone = createSmallCnn(cnnOptions);
    const source = sharedImageSource({ images, labels, preprocess: backbone.preprocess, augment: null }, backbone);
    const head = smallHead();
    const broken = Object.assign(Object.create(Object.getPrototypeOf(backbone)), backbone, {
      workerRecipe: { module: backbone.workerRecipe!.module, factory: 'noSuchFactory', options: {} },
    });
    await expect(
      GradPool.start({ threads: 2, backbone: broken, sources: { train: source }, head, backend: 'wasm' }),
    ).rejects.toThrow(/gradient worker 1: start-up failed: .*no export noSuchFactory/);
    head.dispose();
    await backbone.dispose();
  });
});

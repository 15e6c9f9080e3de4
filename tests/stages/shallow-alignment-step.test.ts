/**
 * The shallow alignment term inside joint training on a tiny int8 ONNX network imported as trainable:
 * the backbone hands out an inner tensor's maps with its features, the term changes the update only where
 * the backbone trains, and gradient threads make the update one thread makes, bit for bit.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importOnnxBackbone } from '../../trainer/src/backbone/onnx-import.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { PAPER_AUGMENT } from '../../trainer/src/data/augment.ts';
import { packImages } from '../../trainer/src/data/shared-images.ts';
import type { LossWeights } from '../../trainer/src/head/losses.ts';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Adam } from '../../trainer/src/optim/adam.ts';
import { GradPool } from '../../trainer/src/stages/grad-pool.ts';
import { phaseGroups, trainPrototypeEpoch, type EpochStats } from '../../trainer/src/stages/prototype-phase.ts';
import { sharedImageSource } from '../../trainer/src/stages/sources.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { TINY_ONNX, tinyQLinearBackbone } from '../e2e/tiny-onnx-backbone.ts';
import { maxAbsDiff } from '../export/helpers.ts';
import { PhaseConfigDefaults } from '../support/phase-defaults.ts';

const N = 12;
const SIDE = TINY_ONNX.side;
const PRE = { size: SIDE, mean: [0.485, 0.456, 0.406] as const, std: [0.229, 0.224, 0.225] as const };
const imgRng = new Rng(11);
const images = packImages(
  Array.from({ length: N }, () => ({
    width: SIDE,
    height: SIDE,
    data: Uint8Array.from({ length: SIDE * SIDE * 3 }, () => imgRng.int(256)),
  })),
);
const labels = Int32Array.from({ length: N }, (_, i) => i % 3);
const phase = {
  ...PhaseConfigDefaults,
  batchSize: 8,
  microBatch: 2,
  lr: { features: 1e-2, addOn: 3e-3, prototypes: 3e-3, lastLayer: 0 },
};
const BASE_LOSS = { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 };
const ALIGN = { shallowAlignment: 1, shallowAlignmentMargin: 0.05, shallowAlignmentTensor: 'conv1' };

let path: string;

const backboneOf = (tap = 'auto') =>
  importOnnxBackbone({ path, tap, preprocess: { ...PRE, mean: [...PRE.mean], std: [...PRE.std] } });

/** One joint epoch (backbone trained, or held fixed with `frozen`); `threads` > 1 spreads micro-batches. */
async function train(threads: number, loss: LossWeights, frozen = false) {
  const backbone = await backboneOf();
  const source = sharedImageSource(
    { images, labels, preprocess: backbone.preprocess, augment: PAPER_AUGMENT },
    backbone,
  );
  const head = new ProtoHead(
    {
      inputChannels: TINY_ONNX.channels[2],
      addOn: [
        { channels: 6, activation: 'relu' },
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
  let stats: EpochStats;
  try {
    const opt = new Adam(phaseGroups(phase, head, frozen ? null : backbone));
    stats = await trainPrototypeEpoch({
      label: 't',
      phase,
      head,
      source,
      loss,
      optimizer: opt,
      rng: new Rng(9),
      quiet: true,
      pool: pool && { pool, backbone: frozen ? null : backbone },
    });
    opt.dispose();
  } finally {
    await pool?.close();
  }
  const weights = new Map([...head.getWeights(), ...backbone.getWeights()]);
  head.dispose();
  await backbone.dispose();
  return { stats, weights };
}

const largestDiff = (a: Map<string, { data: Float32Array }>, b: Map<string, { data: Float32Array }>) =>
  Math.max(...[...a].map(([k, v]) => maxAbsDiff(v.data, b.get(k)!.data)));

describe('shallow alignment in joint training (tiny int8 ONNX network)', () => {
  beforeAll(async () => {
    await initBackend('wasm', { quiet: true });
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-sdfa-'));
    path = join(dir, 'tiny.onnx');
    await writeFile(path, tinyQLinearBackbone(4));
  });
  afterAll(() => tf.disposeVariables());

  it('the backbone returns an inner tensor’s maps with its features, the same as tapping it', async () => {
    const whole = await backboneOf();
    const inner = await backboneOf('conv1');
    const x = tf.randomUniform([2, SIDE, SIDE, 3], -2, 2, 'float32', 5) as tf.Tensor4D;
    const [deep, shallow] = whole.applyWithInner!(x, true, 'conv1');
    expect(deep.shape).toEqual([2, TINY_ONNX.grid, TINY_ONNX.grid, TINY_ONNX.channels[2]]);
    expect(shallow.shape).toEqual([2, SIDE / 2, SIDE / 2, TINY_ONNX.channels[0]]);
    expect(maxAbsDiff(deep.dataSync(), whole.apply(x, true).dataSync())).toBe(0);
    expect(maxAbsDiff(shallow.dataSync(), inner.apply(x, true).dataSync())).toBe(0);
    expect(() => whole.applyWithInner!(x, true, 'logits')).toThrow(
      /"logits" is not a tensor on the way from input to the tap/,
    );
    await whole.dispose();
    await inner.dispose();
  });

  it('changes the update when the backbone trains, and leaves it as it was when it does not', async () => {
    const plain = await train(1, BASE_LOSS);
    const aligned = await train(1, { ...BASE_LOSS, ...ALIGN });
    expect(aligned.stats.loss).toBeGreaterThan(plain.stats.loss);
    // The epoch reports the term's mean cost; runs without it report none.
    expect(aligned.stats.shallowAlignment).toBeGreaterThan(0);
    expect(aligned.stats.shallowAlignment).toBeLessThan(2);
    expect(plain.stats).not.toHaveProperty('shallowAlignment');
    expect(largestDiff(plain.weights, aligned.weights)).toBeGreaterThan(1e-5);
    const frozenPlain = await train(1, BASE_LOSS, true);
    const frozenAligned = await train(1, { ...BASE_LOSS, ...ALIGN }, true);
    expect(frozenAligned.stats).toEqual({ ...frozenPlain.stats, seconds: frozenAligned.stats.seconds });
    expect(largestDiff(frozenPlain.weights, frozenAligned.weights)).toBe(0);
  });

  it('makes the same update with 2 gradient threads as with one, bit for bit', async () => {
    const one = await train(1, { ...BASE_LOSS, ...ALIGN });
    const two = await train(2, { ...BASE_LOSS, ...ALIGN });
    expect(two.stats.loss).toBe(one.stats.loss);
    expect(two.stats.shallowAlignment).toBe(one.stats.shallowAlignment);
    expect(largestDiff(one.weights, two.weights)).toBe(0);
  });
});

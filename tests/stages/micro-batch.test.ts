import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Adam } from '../../trainer/src/optim/adam.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import type { LossWeights } from '../../trainer/src/head/losses.ts';
import { phaseGroups, trainPrototypeEpoch } from '../../trainer/src/stages/prototype-phase.ts';
import { softenedProbabilities } from '../../trainer/src/stages/teacher.ts';
import { memorySource } from '../support/memory-source.ts';
import { PhaseConfigDefaults } from '../support/phase-defaults.ts';

type Extra = Pick<LossWeights, 'presenceCost' | 'distillation' | 'orthogonality'>;

async function run(microBatch: number | undefined, extra: Extra = {}) {
  const rng = new Rng(3);
  const [n, H, W, D] = [12, 2, 2, 6];
  const feats = Float32Array.from({ length: n * H * W * D }, () => rng.next());
  const source = memorySource(
    feats,
    [H, W, D],
    Int32Array.from({ length: n }, (_, i) => i % 3),
  );
  const head = new ProtoHead(
    {
      inputChannels: D,
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
  const phase = { ...PhaseConfigDefaults, batchSize: 12, inputDropout: 0.2, microBatch };
  const opt = new Adam(phaseGroups(phase, head, null));
  // A teacher with its own opinion of every item: random logits softened at T = 2.
  const logits = Float32Array.from({ length: n * 3 }, () => 4 * rng.next());
  const teacher = { n, numClasses: 3, mirrored: false, probs: softenedProbabilities(logits, 3, 2) };
  const stats = await trainPrototypeEpoch({
    label: 't',
    phase,
    head,
    source,
    loss: { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08, distillationTemperature: 2, ...extra },
    optimizer: opt,
    teacher: (extra.distillation ?? 0) > 0 ? teacher : null,
    rng,
    quiet: true,
  });
  const w = head.getWeights();
  head.dispose();
  return { stats, w };
}

describe('micro-batches', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it.each<[string, Extra]>([
    ['the paper', {}],
    ['presence 0.5', { presenceCost: 0.5 }],
    ['distillation 0.7', { distillation: 0.7 }],
    ['orthogonality 0.3', { orthogonality: 0.3 }],
  ])('accumulate to the same update and statistics as the whole batch (%s)', async (_name, extra) => {
    const whole = await run(undefined, extra);
    for (const micro of [5, 4, 1]) {
      const split = await run(micro, extra);
      expect(split.stats.loss).toBeCloseTo(whole.stats.loss, 5);
      expect(split.stats.trainAccuracy).toBe(whole.stats.trainAccuracy);
      for (const [name, t] of whole.w) {
        const other = split.w.get(name)!.data;
        t.data.forEach((v, i) => expect(Math.abs(other[i] - v), `${name}[${i}] micro ${micro}`).toBeLessThan(1e-5));
      }
    }
    // And an update did happen.
    expect(whole.stats.loss).toBeGreaterThan(0);
  });

  it('a distillation term changes the update', async () => {
    const plain = await run(undefined);
    const distilled = await run(undefined, { distillation: 0.7 });
    expect(distilled.stats.loss).toBeGreaterThan(plain.stats.loss);
    const a = plain.w.get('head.prototypes')!.data;
    const b = distilled.w.get('head.prototypes')!.data;
    expect(Math.max(...a.map((v, i) => Math.abs(v - b[i])))).toBeGreaterThan(1e-4);
  });
});

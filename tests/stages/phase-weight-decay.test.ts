/** A phase's weight decay reaches the add-on's optimiser group (not the prototypes' or the last layer's) and shrinks it; head weights load without leaking. */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam } from '../../trainer/src/optim/adam.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import type { PhaseConfig } from '../../trainer/src/config/config.ts';
import { phaseGroups, trainPrototypeEpoch } from '../../trainer/src/stages/prototype-phase.ts';
import { memorySource } from '../support/memory-source.ts';
import { PhaseConfigDefaults } from '../support/phase-defaults.ts';
import { tinyHead } from '../support/shared-features.ts';

// D matches tinyHead's input channels.
const [N, H, W, D] = [12, 2, 2, 6];

/** Sum of squares of the add-on's weights after `epochs` epochs of the phase. */
async function addOnNormAfter(phase: PhaseConfig): Promise<number> {
  const rng = new Rng(3);
  const feats = Float32Array.from({ length: N * H * W * D }, () => rng.next());
  const source = memorySource(
    feats,
    [H, W, D],
    Int32Array.from({ length: N }, (_, i) => i % 3),
  );
  const head = tinyHead();
  const optimizer = new Adam(phaseGroups(phase, head, null));
  for (let e = 0; e < phase.epochs; e++)
    await trainPrototypeEpoch({
      label: 't',
      phase,
      head,
      source,
      loss: { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 },
      optimizer,
      rng,
      quiet: true,
    });
  let norm = 0;
  for (const [name, t] of head.getWeights())
    if (name.startsWith('head.addon')) norm += t.data.reduce((a, v) => a + v * v, 0);
  optimizer.dispose();
  head.dispose();
  return norm;
}

describe('phase weight decay', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('goes to the add-on group (and a trainable backbone), never to prototypes or the last layer', () => {
    const head = tinyHead();
    const phase: PhaseConfig = {
      ...PhaseConfigDefaults,
      lr: { features: 0, addOn: 3e-3, prototypes: 3e-3, lastLayer: 1e-4 },
      weightDecay: { features: 0, addOn: 1e-3 },
    };
    const decay = Object.fromEntries(phaseGroups(phase, head, null).map((g) => [g.name, g.weightDecay ?? 0]));
    expect(decay).toEqual({ addOn: 1e-3, prototypes: 0, lastLayer: 0 });
    head.dispose();
  });

  it('shrinks the add-on weights against the same run without it', async () => {
    const phase = { ...PhaseConfigDefaults, epochs: 3, batchSize: 4, lr: { ...PhaseConfigDefaults.lr, addOn: 0.03 } };
    const plain = await addOnNormAfter(phase);
    const decayed = await addOnNormAfter({ ...phase, weightDecay: { features: 0, addOn: 5 } });
    expect(plain).toBeGreaterThan(0);
    expect(decayed).toBeLessThan(0.6 * plain);
  });
});

describe('head weights', () => {
  it('setWeights copies every weight without leaving a tensor behind', () => {
    const a = tinyHead();
    const b = tinyHead();
    a.prototypes.assign(tf.fill(a.prototypes.shape, 0.25));
    const before = tf.memory().numTensors;
    b.setWeights(a.getWeights());
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(b.prototypes.dataSync())).toEqual(Array.from(a.prototypes.dataSync()));
    a.dispose();
    b.dispose();
  });
});

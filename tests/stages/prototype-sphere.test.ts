import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../trainer/src/config/presets.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { Adam } from '../../trainer/src/optim/adam.ts';
import { phaseGroups, trainPrototypeEpoch } from '../../trainer/src/stages/prototype-phase.ts';
import { memorySource } from '../support/memory-source.ts';
import { PhaseConfigDefaults } from '../support/phase-defaults.ts';
import { tinyHead, TINY_MAP } from '../support/shared-features.ts';

function rowNorms(head: ReturnType<typeof tinyHead>): number[] {
  const p = head.prototypes.arraySync() as number[][];
  return p.map((row) => Math.hypot(...row));
}

async function trainOneEpoch(sphere: boolean) {
  const rng = new Rng(5);
  const [H, W, D] = TINY_MAP;
  const n = 12;
  const feats = Float32Array.from({ length: n * H * W * D }, () => rng.next() * 2);
  const source = memorySource(
    feats,
    [H, W, D],
    Int32Array.from({ length: n }, (_, i) => i % 3),
  );
  const head = tinyHead();
  head.normalizePrototypes();
  const phase = {
    ...PhaseConfigDefaults,
    batchSize: 4,
    lr: { features: 0, addOn: 0.05, prototypes: 0.05, lastLayer: 0 },
  };
  const optimizer = new Adam(phaseGroups(phase, head, null));
  await trainPrototypeEpoch({
    label: 't',
    phase,
    head,
    source,
    loss: { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 },
    optimizer,
    rng,
    quiet: true,
    afterStep: sphere ? () => head.normalizePrototypes() : undefined,
  });
  const norms = rowNorms(head);
  optimizer.dispose();
  head.dispose();
  return norms;
}

describe('prototypes on the unit sphere (head.prototypeSphere)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('start from U[0,1) off the sphere; normalizePrototypes puts every one at length 1', () => {
    const head = tinyHead();
    const before = rowNorms(head);
    expect(before.some((v) => Math.abs(v - 1) > 0.05)).toBe(true);
    head.normalizePrototypes();
    for (const v of rowNorms(head)) expect(v).toBeCloseTo(1, 5);
    head.dispose();
  });

  it('stay unit vectors through an epoch of Adam steps; free ones starting there drift off', async () => {
    for (const v of await trainOneEpoch(true)) expect(v).toBeCloseTo(1, 5);
    const free = await trainOneEpoch(false);
    expect(free.some((v) => Math.abs(v - 1) > 0.05)).toBe(true);
  });

  it('is refused in a config whose add-on does not end in l2norm, naming the field', () => {
    expect(() => resolveConfig('cub200-paper', { head: { prototypeSphere: true } })).toThrow(
      /head\.prototypeSphere: needs an add-on ending in 'l2norm'.*'sigmoid'/,
    );
    expect(resolveConfig('cub200', { head: { prototypeSphere: true } }).head.prototypeSphere).toBe(true);
  });
});

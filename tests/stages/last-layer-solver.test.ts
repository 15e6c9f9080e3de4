import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import {
  isProximal,
  lastLayerOptimizer,
  trainLastLayerEpoch,
  wrongClassMaskTensor,
} from '../../trainer/src/stages/last-layer.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Median of each prototype's wrong-class weights (rows are prototypes, 2 per class). */
function wrongClassMedians(head: ProtoHead): number[] {
  const C = head.spec.numClasses;
  const w = head.lastLayer.dataSync();
  return Array.from({ length: head.numPrototypes }, (_, j) => {
    const wrong = Array.from({ length: C }, (_, c) => c)
      .filter((c) => c !== head.protoClass[j])
      .map((c) => w[j * C + c])
      .sort((a, b) => a - b);
    const k = wrong.length;
    return k % 2 ? wrong[(k - 1) / 2] : (wrong[k / 2 - 1] + wrong[k / 2]) / 2;
  });
}

describe('stage 3 takes its solver from the optimiser', () => {
  const spec = {
    inputChannels: 4,
    addOn: [{ channels: 4, activation: 'sigmoid' as const }],
    numClasses: 3,
    prototypesPerClass: 2,
    incorrectClassWeight: -0.5,
  };
  const data = (() => {
    const rng = new Rng(5);
    const n = 24;
    const sims = Float32Array.from({ length: n * 6 }, () => rng.next());
    return { sims, labels: Int32Array.from({ length: n }, (_, i) => i % 3), n };
  })();
  const epoch = (solver: 'proximal' | 'subgradient', l1: number) => {
    const head = new ProtoHead(spec, new Rng(1));
    const mask = wrongClassMaskTensor(head);
    const optimizer = lastLayerOptimizer(head, { lr: 0.05, l1, l1Solver: solver }, mask);
    trainLastLayerEpoch({ head, data, batchSize: 8, l1, optimizer, rng: new Rng(2) });
    const proximal = isProximal(optimizer);
    optimizer.dispose();
    mask.dispose();
    return { head, proximal };
  };

  it('proximal at l1 = 0 is still proximal: rows end recentred (wrong-class median exactly 0)', () => {
    const { head, proximal } = epoch('proximal', 0);
    expect(proximal).toBe(true);
    for (const m of wrongClassMedians(head)) expect(Math.abs(m)).toBe(0);
  });

  it('subgradient at l1 = 0 leaves rows where Adam put them (the -0.5 start moves, not to a 0 median)', () => {
    const { head, proximal } = epoch('subgradient', 0);
    expect(proximal).toBe(false);
    for (const m of wrongClassMedians(head)) expect(m).toBeLessThan(-0.3);
  });
});

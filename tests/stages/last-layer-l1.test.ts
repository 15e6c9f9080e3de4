import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Adam } from '../../trainer/src/optim/adam.ts';
import { Rng } from '../../trainer/src/run/rng.ts';
import {
  lastLayerOptimizer,
  lastLayerSparsity,
  similarityAccuracy,
  trainLastLayerEpoch,
  wrongClassMaskTensor,
} from '../../trainer/src/stages/last-layer.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('Adam with a proximal L1 step', () => {
  it('soft-thresholds masked weights by lr * lambda / (sqrt(v_hat) + eps) after the Adam step', () => {
    const w0 = [0.3, -0.5, 0.2, 0.01];
    const g = [0.4, 0.1, -0.05, 0.02];
    const mask = [0, 1, 1, 1];
    const lr = 0.1;
    const lambda = 0.5;
    const w = tf.variable(tf.tensor1d(w0), true, 'prox_w');
    const adam = new Adam([{ name: 'g', lr, vars: [['w', w]], l1: { lambda, mask: tf.tensor1d(mask) } }]);
    adam.apply({ prox_w: tf.tensor1d(g) });
    // Step 1: m_hat = g, v_hat = g^2, so the Adam step is lr * g / (|g| + eps)
    // and the threshold lr * lambda / (|g| + eps) where the mask is 1.
    const expected = w0.map((wi, i) => {
      const denom = Math.abs(g[i]) + 1e-8;
      const stepped = wi - (lr * g[i]) / denom;
      const t = (mask[i] * lr * lambda) / denom;
      return Math.sign(stepped) * Math.max(Math.abs(stepped) - t, 0);
    });
    // -0.5 - 0.1 = -0.6, threshold 0.5: -0.1; 0.2 + 0.1 = 0.3, threshold 1: 0; 0.01 - 0.1 = -0.09, threshold 2.5: 0.
    expect(expected[1]).toBeCloseTo(-0.1, 6);
    expect(expected[2]).toBe(0);
    const got = Array.from(w.dataSync());
    got.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
    expect(Math.abs(got[2])).toBe(0);
    expect(Math.abs(got[3])).toBe(0);
    // The unmasked weight takes the plain Adam step.
    expect(got[0]).toBeCloseTo(0.3 - 0.1, 6);
    adam.dispose();
  });
});

describe('stage 3 solvers on separable similarities', () => {
  // 4 classes x 3 prototypes; an image of class c is similar to its own prototypes, with noise.
  const C = 4;
  const perClass = 3;
  const make = (n: number, seed: number) => {
    const rng = new Rng(seed);
    const m = C * perClass;
    const sims = new Float32Array(n * m);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const c = i % C;
      labels[i] = c;
      for (let j = 0; j < m; j++) sims[i * m + j] = (Math.floor(j / perClass) === c ? 3 : 0.5) + rng.next();
    }
    return { sims, labels, n };
  };
  const fit = (solver: 'proximal' | 'subgradient') => {
    const head = new ProtoHead({ inputChannels: 4, addOn: [{ channels: 4, activation: 'sigmoid' }], numClasses: C, prototypesPerClass: perClass, incorrectClassWeight: -0.5 }, new Rng(1));
    const ll = { lr: 0.01, l1: 0.01, l1Solver: solver } as const;
    const mask = wrongClassMaskTensor(head);
    const optimizer = lastLayerOptimizer(head, ll, mask);
    const rng = new Rng(2);
    const train = make(200, 3);
    for (let e = 0; e < 30; e++) trainLastLayerEpoch({ head, data: train, batchSize: 20, l1: ll.l1, proximal: solver === 'proximal', optimizer, rng });
    optimizer.dispose();
    mask.dispose();
    return { head, val: similarityAccuracy(head, make(80, 4))! };
  };

  it('the proximal solver sets wrong-class weights exactly to 0 and keeps accuracy', () => {
    const { head, val } = fit('proximal');
    expect(lastLayerSparsity(head, 0)).toBeGreaterThan(0.9);
    expect(val.top1).toBe(1);
    // Own-class weights are not penalised: they stay positive.
    const w = head.lastLayer.dataSync();
    for (let j = 0; j < C * perClass; j++) expect(w[j * C + Math.floor(j / perClass)]).toBeGreaterThan(0.5);
  });

  it('the subgradient solver (the paper) leaves no weight exactly at 0', () => {
    const { head, val } = fit('subgradient');
    expect(lastLayerSparsity(head, 0)).toBe(0);
    expect(val.top1).toBe(1);
  });
});

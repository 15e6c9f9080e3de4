import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Adam } from '../../trainer/src/optim/adam.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import {
  lastLayerOptimizer,
  lastLayerSparsity,
  recenterRows,
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
  const fitWith = (solver: 'proximal' | 'subgradient') => {
    const head = new ProtoHead(
      {
        inputChannels: 4,
        addOn: [{ channels: 4, activation: 'sigmoid' }],
        numClasses: C,
        prototypesPerClass: perClass,
        incorrectClassWeight: -0.5,
      },
      new Rng(1),
    );
    const ll = { lr: 0.01, l1: 0.01, l1Solver: solver } as const;
    const mask = wrongClassMaskTensor(head);
    const optimizer = lastLayerOptimizer(head, ll, mask);
    const rng = new Rng(2);
    const train = make(200, 3);
    for (let e = 0; e < 30; e++)
      trainLastLayerEpoch({
        head,
        data: train,
        batchSize: 20,
        l1: ll.l1,
        optimizer,
        rng,
      });
    optimizer.dispose();
    mask.dispose();
    return { head, val: similarityAccuracy(head, make(80, 4))! };
  };

  it('the proximal solver sets wrong-class weights exactly to 0 and keeps accuracy', () => {
    const { head, val } = fitWith('proximal');
    expect(lastLayerSparsity(head, 0)).toBeGreaterThan(0.9);
    expect(val.top1).toBe(1);
    // Own-class weights are not penalised: they stay positive.
    const w = head.lastLayer.dataSync();
    for (let j = 0; j < C * perClass; j++) expect(w[j * C + Math.floor(j / perClass)]).toBeGreaterThan(0.5);
  });

  it('the subgradient solver (the paper) leaves no weight exactly at 0', () => {
    const { head, val } = fitWith('subgradient');
    expect(lastLayerSparsity(head, 0)).toBe(0);
    expect(val.top1).toBe(1);
  });
});

describe('recentering the last layer', () => {
  it('turns +1/-0.5 into +1.5/0 with the same softmax, and gives each row the least wrong-class L1 its shift allows', () => {
    const head = new ProtoHead(
      {
        inputChannels: 4,
        addOn: [{ channels: 4, activation: 'sigmoid' }],
        numClasses: 3,
        prototypesPerClass: 2,
        incorrectClassWeight: -0.5,
      },
      new Rng(1),
    );
    const x = tf.tensor2d([0.5, 2, 0.1, 3, 1, 0, 4, 0.2, 0.3, 0.9, 1.1, 0.4], [2, 6]);
    const before = tf.tidy(() => tf.softmax(tf.matMul(x, head.lastLayer as tf.Tensor2D)).dataSync());
    recenterRows(head);
    const w = Array.from(head.lastLayer.dataSync());
    // Rows are prototypes (2 per class, class-major): own weight 1 - (-0.5) = 1.5, every wrong-class weight exactly 0.
    expect(w).toEqual([1.5, 0, 0, 1.5, 0, 0, 0, 1.5, 0, 0, 1.5, 0, 0, 0, 1.5, 0, 0, 1.5]);
    const after = tf.tidy(() => tf.softmax(tf.matMul(x, head.lastLayer as tf.Tensor2D)).dataSync());
    after.forEach((p, i) => expect(p).toBeCloseTo(before[i], 6));
    expect(lastLayerSparsity(head, 0)).toBe(1);
    // A row with wrong-class weights -0.2, 0.4 (median 0.1 for two entries) moves by -0.1.
    head.lastLayer.assign(tf.tensor2d([0.7, -0.2, 0.4, ...w.slice(3)], [6, 3]));
    recenterRows(head);
    const row = Array.from(head.lastLayer.dataSync().slice(0, 3));
    [0.6, -0.3, 0.3].forEach((v, i) => expect(row[i]).toBeCloseTo(v, 6));
    head.dispose();
  });
});

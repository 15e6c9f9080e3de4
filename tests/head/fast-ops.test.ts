import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { squaredDistances } from '../../trainer/src/head/distances.ts';
import { linear, minSquaredDistances, nearestSquaredDistances } from '../../trainer/src/head/fast-ops.ts';
import { Rng } from '../../trainer/src/core/rng.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const rand = (shape: number[], rng: Rng) =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => rng.next()),
    shape,
  );
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];

describe('fast ops match the plain tfjs formulation', () => {
  it('linear: value and both gradients', () => {
    const rng = new Rng(7);
    const x = rand([5, 4], rng) as tf.Tensor2D;
    const w = rand([4, 3], rng) as tf.Tensor2D;
    const up = rand([5, 3], rng);
    const f = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(linear(a as tf.Tensor2D, b as tf.Tensor2D, { inputGrad: true }), up));
    const g = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), up));
    const [fx, fw] = tf.grads(f)([x, w]);
    const [gx, gw] = tf.grads(g)([x, w]);
    expect(maxDiff(fx, gx)).toBeLessThan(1e-5);
    expect(maxDiff(fw, gw)).toBeLessThan(1e-5);
    expect(maxDiff(linear(x, w, { inputGrad: false }), tf.matMul(x, w))).toBeLessThan(1e-6);
  });

  it('linear without input gradient gives zero dx and the same dw', () => {
    const rng = new Rng(8);
    const x = rand([3, 2], rng) as tf.Tensor2D;
    const w = rand([2, 2], rng) as tf.Tensor2D;
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(linear(a as tf.Tensor2D, b as tf.Tensor2D, { inputGrad: false })),
    )([x, w]);
    expect(Array.from(dx.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
    const [, dw2] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D)))([
      x,
      w,
    ]);
    expect(maxDiff(dw, dw2)).toBeLessThan(1e-6);
  });

  it('minSquaredDistances: value and gradients equal min over squaredDistances', () => {
    const rng = new Rng(9);
    const B = 3,
      HW = 4,
      P = 5,
      m = 6;
    const z = rand([B * HW, P], rng) as tf.Tensor2D;
    const p = rand([m, P], rng) as tf.Tensor2D;
    const up = rand([B, m], rng);
    const fast = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(minSquaredDistances(a as tf.Tensor2D, b as tf.Tensor2D, B, HW), up));
    const plain = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.min(tf.reshape(squaredDistances(a as tf.Tensor2D, b as tf.Tensor2D), [B, HW, m]), 1), up));
    expect(Math.abs(fast(z, p).dataSync()[0] - plain(z, p).dataSync()[0])).toBeLessThan(1e-5);
    const [fz, fp] = tf.grads(fast)([z, p]);
    const [pz, pp] = tf.grads(plain)([z, p]);
    expect(maxDiff(fz, pz)).toBeLessThan(1e-5);
    expect(maxDiff(fp, pp)).toBeLessThan(1e-5);
    // and the gradient is not trivially zero
    expect(tf.max(tf.abs(fp)).dataSync()[0]).toBeGreaterThan(1e-3);
  });

  it('nearestSquaredDistances: the k smallest, ascending, with the gradient of sorting all patches', () => {
    const rng = new Rng(10);
    const B = 2,
      HW = 5,
      P = 3,
      m = 4,
      k = 3;
    const z = rand([B * HW, P], rng) as tf.Tensor2D;
    const p = rand([m, P], rng) as tf.Tensor2D;
    const up = rand([B, m, k], rng);
    // Plain: every distance; the k nearest picked by one-hot masks (tfjs' topk has no gradient).
    const allDistances = (a: tf.Tensor, b: tf.Tensor) =>
      tf.transpose(tf.reshape(squaredDistances(a as tf.Tensor2D, b as tf.Tensor2D), [B, HW, m]), [0, 2, 1]);
    const picks = tf.oneHot(tf.topk(tf.neg(allDistances(z, p)), k).indices, HW); // [B, m, k, HW], a constant
    const plainNearest = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.expandDims(allDistances(a, b), 2), picks), 3);
    const near = nearestSquaredDistances(z, p, B, HW, k);
    expect(near.shape).toEqual([B, m, k]);
    expect(maxDiff(near, plainNearest(z, p))).toBeLessThan(1e-5);
    const v = near.arraySync() as number[][][];
    for (const row of v.flat()) expect(row[0] <= row[1] && row[1] <= row[2]).toBe(true);
    // Refined values: recomputed at the chosen patches, the same numbers.
    expect(maxDiff(nearestSquaredDistances(z, p, B, HW, k, true), near)).toBeLessThan(1e-5);
    const fast = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(nearestSquaredDistances(a as tf.Tensor2D, b as tf.Tensor2D, B, HW, k), up));
    const plain = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(plainNearest(a, b), up));
    const [fz, fp] = tf.grads(fast)([z, p]);
    const [pz, pp] = tf.grads(plain)([z, p]);
    expect(maxDiff(fz, pz)).toBeLessThan(1e-5);
    expect(maxDiff(fp, pp)).toBeLessThan(1e-5);
    // A patch outside every top-k gets no gradient; with k = 3 of 5 some do.
    expect(tf.max(tf.abs(fp)).dataSync()[0]).toBeGreaterThan(1e-3);
    // k = 1 is minSquaredDistances.
    expect(maxDiff(tf.squeeze(nearestSquaredDistances(z, p, B, HW, 1), [2]), minSquaredDistances(z, p, B, HW))).toBe(0);
    expect(() => nearestSquaredDistances(z, p, B, HW, HW + 1)).toThrow(/k must be an integer in \[1, 5\]/);
  });
});

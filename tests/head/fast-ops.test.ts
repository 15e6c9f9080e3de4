import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { squaredDistances } from '../../trainer/src/head/distances.ts';
import { linear, minSquaredDistances } from '../../trainer/src/head/fast-ops.ts';
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
});

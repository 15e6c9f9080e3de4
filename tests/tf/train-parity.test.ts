/**
 * A few Adam steps of a small conv net (conv2d → batchNorm → relu6 →
 * depthwiseConv2d → 1×1 conv2d → mean → dense → softmax CE) give the same
 * losses on wasm as on cpu.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { randn } from './helpers.ts';

const X_SHAPE: [number, number, number, number] = [4, 16, 16, 3];
const LABELS = [0, 2, 1, 2];
const CLASSES = 3;
const SHAPES: Array<[string, number[], number]> = [
  ['conv', [3, 3, 3, 8], 0.3],
  ['gamma', [8], 0],
  ['beta', [8], 0],
  ['dw', [3, 3, 8, 1], 0.3],
  ['pw', [1, 1, 8, 16], 0.3],
  ['dense', [16, CLASSES], 0.3],
  ['bias', [CLASSES], 0],
];
const STEPS = 6;

function forwardLoss(x: tf.Tensor4D, v: Record<string, tf.Variable>): tf.Scalar {
  let h = tf.conv2d(x, v.conv as tf.Tensor4D, 2, 'same');
  const { mean, variance } = tf.moments(h, [0, 1, 2]);
  h = tf.relu6(tf.batchNorm(h, mean, variance, v.beta as tf.Tensor1D, v.gamma as tf.Tensor1D, 1e-3)) as tf.Tensor4D;
  h = tf.depthwiseConv2d(h, v.dw as tf.Tensor4D, 2, 'same');
  h = tf.conv2d(h, v.pw as tf.Tensor4D, 1, 'same');
  const pooled = tf.mean(h, [1, 2]);
  const logits = tf.add(tf.matMul(pooled, v.dense as tf.Tensor2D), v.bias);
  return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(LABELS, 'int32'), CLASSES), logits);
}

async function train(backend: string): Promise<number[]> {
  await tf.setBackend(backend);
  const x = tf.tensor4d(randn(X_SHAPE, 1), X_SHAPE);
  const vars: Record<string, tf.Variable> = {};
  SHAPES.forEach(([name, shape, std], i) => {
    const init = std === 0 ? tf.fill(shape, name === 'gamma' ? 1 : 0) : tf.tensor(randn(shape, 10 + i, std), shape);
    vars[name] = tf.variable(init);
    init.dispose();
  });
  const optimizer = tf.train.adam(0.01);
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const loss = optimizer.minimize(() => forwardLoss(x, vars), true, Object.values(vars));
    losses.push(loss!.dataSync()[0]);
    loss!.dispose();
  }
  optimizer.dispose();
  tf.dispose([x, ...Object.values(vars)]);
  return losses;
}

beforeAll(async () => {
  await initBackend('cpu', { quiet: true });
  await initBackend('wasm', { quiet: true });
});

describe('training parity wasm vs cpu', () => {
  it(`gives the same losses for ${STEPS} Adam steps`, async () => {
    const cpu = await train('cpu');
    const wasm = await train('wasm');
    // Training must actually move the loss, or the comparison proves little.
    expect(cpu[STEPS - 1]).toBeLessThan(cpu[0]);
    for (let i = 0; i < STEPS; i++) expect(Math.abs(wasm[i] - cpu[i])).toBeLessThan(1e-4);
  });
});

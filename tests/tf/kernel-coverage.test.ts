/**
 * Which kernels does training need on wasm? Profiles tf.grads of a small model
 * exercising the ops of the backbone and ProtoPNet head on cpu, lists every
 * kernel used, and checks each is registered for wasm; then checks the
 * gradients themselves agree between wasm and cpu.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { randn, relMaxDiff, runOn } from './helpers.ts';

const B = 3;
const CLASSES = 4;
const SHAPES: Record<string, number[]> = {
  w1: [3, 3, 3, 8],
  b1: [8],
  gamma: [8],
  beta: [8],
  dw: [3, 3, 8, 2],
  pw: [1, 1, 16, 12],
  pwBias: [12],
  dw2: [3, 3, 12, 1],
  addOn: [1, 1, 12, 6],
  protos: [5, 6],
  fc: [5, CLASSES],
  emb: [CLASSES, 3],
  dense: [6, CLASSES],
};
const NAMES = Object.keys(SHAPES);
const X_SHAPE = [B, 17, 15, 3];
const LABELS = [1, 3, 0];

/** A loss touching every op family the trainer uses (backbone, head, losses). */
function loss(x: tf.Tensor4D, p: Record<string, tf.Tensor>): tf.Scalar {
  // Backbone: fused conv + bias + relu, batch-norm with batch stats, relu6,
  // depthwise (stride 2, valid, multiplier 2), pointwise, fused depthwise.
  let h = tf.fused.conv2d({ x, filter: p.w1 as tf.Tensor4D, strides: 2, pad: 'same', bias: p.b1, activation: 'relu' });
  const { mean, variance } = tf.moments(h, [0, 1, 2]);
  h = tf.batchNorm(h, mean, variance, p.beta as tf.Tensor1D, p.gamma as tf.Tensor1D, 1e-3) as tf.Tensor4D;
  h = tf.relu6(h);
  h = tf.depthwiseConv2d(h, p.dw as tf.Tensor4D, 2, 'valid');
  h = tf.leakyRelu(tf.conv2d(h, p.pw as tf.Tensor4D, 1, 'same'), 0.1);
  h = tf.add(h, p.pwBias) as tf.Tensor4D;
  h = tf.fused.depthwiseConv2d({ x: h, filter: p.dw2 as tf.Tensor4D, strides: 1, pad: 'same', activation: 'relu6' });
  const padded = tf.pad(h, [
    [0, 0],
    [1, 1],
    [1, 1],
    [0, 0],
  ]);
  const pooled = tf.maxPool(tf.avgPool(padded, 2, 1, 'valid'), 2, 2, 'same');
  // ProtoPNet head: add-on 1x1 conv + sigmoid, squared L2 to prototypes,
  // min over positions, log-similarity, last layer, CE + L1 + cluster terms.
  const z = tf.sigmoid(tf.conv2d(pooled, p.addOn as tf.Tensor4D, 1, 'valid'));
  const f = tf.reshape(z, [B, -1, 6]);
  const protos = p.protos as tf.Tensor2D;
  const d = tf.relu(
    tf.sub(
      tf.add(tf.sum(tf.square(f), -1, true), tf.reshape(tf.sum(tf.square(protos), -1), [1, 1, -1])),
      tf.mul(2, tf.matMul(f, tf.tile(tf.expandDims(protos, 0), [B, 1, 1]), false, true)),
    ),
  );
  const dmin = tf.min(d, 1);
  const sim = tf.log(tf.div(tf.add(dmin, 1), tf.add(dmin, 1e-4)));
  const labels = tf.tensor1d(LABELS, 'int32');
  const logits = tf.add(tf.matMul(sim, p.fc as tf.Tensor2D), tf.mean(tf.gather(p.emb, labels), 1, true));
  const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(labels, CLASSES), logits);
  const l1 = tf.mul(1e-4, tf.sum(tf.abs(p.fc)));
  const cluster = tf.mean(tf.min(tf.reshape(d, [B, -1]), 1));
  const sep = tf.mean(tf.maximum(tf.minimum(tf.sqrt(tf.add(dmin, 1e-6)), 3), 0.1));
  // A plain dense branch: pooled features → matMul → logSoftmax, clipByValue, elu.
  const gap = tf.mean(z, [1, 2]);
  const dense = tf.elu(tf.clipByValue(tf.matMul(gap, p.dense as tf.Tensor2D), -3, 3));
  const nll = tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, CLASSES), tf.logSoftmax(dense)), 1)));
  return tf.addN([ce, l1, tf.mul(0.1, cluster), tf.mul(0.01, sep), nll]) as tf.Scalar;
}

function params(): tf.Tensor[] {
  return NAMES.map((n, i) => tf.tensor(randn(SHAPES[n], 100 + i, n === 'gamma' ? 0.1 : 0.3), SHAPES[n]));
}

function gradsOfAll(): tf.Tensor[] {
  const x = tf.tensor4d(randn(X_SHAPE, 7), X_SHAPE as [number, number, number, number]);
  const ps = params();
  const { value, grads } = tf.valueAndGrads((...ts: tf.Tensor[]) =>
    loss(x, Object.fromEntries(NAMES.map((n, i) => [n, ts[i]]))),
  )(ps);
  return [value, ...grads];
}

beforeAll(async () => {
  await initBackend('cpu', { quiet: true });
  await initBackend('wasm', { quiet: true });
});

describe('kernels used by training gradients', () => {
  it('are all registered for wasm', async () => {
    await tf.setBackend('cpu');
    const info = await tf.profile(() => gradsOfAll());
    // Custom-gradient ops also appear in the profile; keep real kernels only.
    const used = [...new Set(info.kernels.map((k) => k.name))].filter((n) => tf.getKernel(n, 'cpu')).sort();
    const missing = used.filter((n) => !tf.getKernel(n, 'wasm'));
    expect(used).toEqual(
      expect.arrayContaining([
        'Conv2DBackpropFilter',
        'Conv2DBackpropInput',
        'DepthwiseConv2dNativeBackpropFilter',
        'DepthwiseConv2dNativeBackpropInput',
        'UnsortedSegmentSum',
      ]),
    );
    expect(missing).toEqual([]);
  });

  it('give the same loss and gradients on wasm as on cpu', async () => {
    const ref = await runOn('cpu', gradsOfAll);
    const got = await runOn('wasm', gradsOfAll);
    expect(got.length).toBe(NAMES.length + 1);
    for (let i = 0; i < ref.length; i++) {
      const name = i === 0 ? 'loss' : NAMES[i - 1];
      expect(relMaxDiff(got[i], ref[i]), name).toBeLessThan(1e-4);
    }
  });
});

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSmallCnn } from '../../trainer/src/backbone/small-cnn.ts';
import { testValues } from './helpers.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('createSmallCnn', () => {
  it('maps 56x56 to 7x7xC and 64x64 to 8x8xC', async () => {
    const a = createSmallCnn({ inputSize: 56, channels: [32, 64, 128], seed: 1 });
    expect(a.featureShape).toEqual([7, 7, 128]);
    expect(a.preprocess).toEqual({ size: 56, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    const f = await a.extract(testValues(2 * 56 * 56 * 3, 1), 2);
    expect(f.length).toBe(2 * 7 * 7 * 128);
    const b = createSmallCnn({ inputSize: 64, channels: [8, 16, 16], seed: 1 });
    expect(b.featureShape).toEqual([8, 8, 16]);
    await a.dispose();
    await b.dispose();
  });

  it('is deterministic for a seed and differs across seeds', async () => {
    const x = testValues(56 * 56 * 3, 1);
    const make = (seed: number) => createSmallCnn({ inputSize: 56, channels: [8, 16, 16], seed });
    const [a, b, c] = [make(42), make(42), make(43)];
    const [fa, fb, fc] = await Promise.all([a.extract(x, 1), b.extract(x, 1), c.extract(x, 1)]);
    expect(Buffer.compare(Buffer.from(fa.buffer), Buffer.from(fb.buffer))).toBe(0);
    expect(Buffer.compare(Buffer.from(fa.buffer), Buffer.from(fc.buffer))).not.toBe(0);
    expect(a.hash).toBe(b.hash);
    expect(a.hash).not.toBe(c.hash);
    // The same seed must give the same kernel values, not only the same outputs.
    const wa = a.getWeights().get('cnn_s0_conv0/kernel')!;
    expect(Array.from(wa.data)).toEqual(Array.from(b.getWeights().get('cnn_s0_conv0/kernel')!.data));
    // He-normal scale: std ≈ sqrt(2 / (3*3*3)).
    const std = Math.sqrt(wa.data.reduce((s, v) => s + v * v, 0) / wa.data.length);
    expect(std).toBeGreaterThan(0.15);
    expect(std).toBeLessThan(0.4);
    await Promise.all([a.dispose(), b.dispose(), c.dispose()]);
  });

  it('trains: apply gives gradients for its variables, and weights move', async () => {
    const net = createSmallCnn({ inputSize: 16, channels: [4, 8], seed: 3 });
    expect(net.featureShape).toEqual([4, 4, 8]);
    const vars = net.trainableVariables();
    expect(vars.length).toBe(2 * 2 * 3); // per stage: 2 x (kernel, gamma, beta)
    const x = tf.tensor4d(testValues(2 * 16 * 16 * 3, 1), [2, 16, 16, 3]);
    const before = net.getWeights().get('cnn_s0_conv0/kernel')!.data.slice();
    const hashBefore = net.hash;
    const opt = tf.train.sgd(0.1);
    opt.minimize(
      () => {
        const y = net.apply(x, true);
        expect(y.shape).toEqual([2, 4, 4, 8]);
        return tf.mean(tf.square(y)) as tf.Scalar;
      },
      false,
      vars,
    );
    const after = net.getWeights().get('cnn_s0_conv0/kernel')!.data;
    expect(after.some((v, i) => v !== before[i])).toBe(true);
    expect(net.hash).not.toBe(hashBefore);
    x.dispose();
    opt.dispose();
    await net.dispose();
  });

  it('restores weights by name, including batch-norm statistics', async () => {
    const a = createSmallCnn({ inputSize: 16, channels: [4, 8], seed: 10 });
    const b = createSmallCnn({ inputSize: 16, channels: [4, 8], seed: 11 });
    const w = a.getWeights();
    expect([...w.keys()]).toContain('cnn_s1_bn1/moving_variance');
    b.setWeights(w);
    const x = testValues(16 * 16 * 3, 1);
    expect(Array.from(await b.extract(x, 1))).toEqual(Array.from(await a.extract(x, 1)));
    expect(b.hash).toBe(a.hash);
    const partial = new Map(w);
    partial.delete('cnn_s0_conv0/kernel');
    expect(() => b.setWeights(partial)).toThrow(/missing 1 weight/);
    await Promise.all([a.dispose(), b.dispose()]);
  });

  it('does not leak tensors in extract', async () => {
    const net = createSmallCnn({ inputSize: 16, channels: [4], seed: 0 });
    const x = testValues(3 * 16 * 16 * 3, 1);
    await net.extract(x, 3);
    const n = tf.memory().numTensors;
    await net.extract(x, 3);
    expect(tf.memory().numTensors).toBe(n);
    await net.dispose();
  });
});

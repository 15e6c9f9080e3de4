/** Seeded tensor factories and disposeAll. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../trainer/src/core/rng.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { disposeAll, seededNormal, seededUniform } from '../../trainer/src/tf/tensor-utils.ts';

beforeAll(async () => {
  await initBackend('wasm', { quiet: true });
});

describe('seededNormal / seededUniform', () => {
  it('are reproducible from the seed and differ across seeds', () => {
    const a = seededNormal([4, 5], new Rng(7), 0.5);
    const b = seededNormal([4, 5], new Rng(7), 0.5);
    const c = seededNormal([4, 5], new Rng(8), 0.5);
    expect(a.shape).toEqual([4, 5]);
    expect(a.dtype).toBe('float32');
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    expect(Array.from(a.dataSync())).not.toEqual(Array.from(c.dataSync()));
    disposeAll(a, b, c);
  });

  it('have the requested moments and range', () => {
    const n = seededNormal([20000], new Rng(1), 2, 3);
    const v = Array.from(n.dataSync());
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
    expect(mean).toBeCloseTo(3, 1);
    expect(std).toBeCloseTo(2, 1);
    const u = seededUniform([20000], new Rng(2), -1, 3);
    const uv = Array.from(u.dataSync());
    expect(Math.min(...uv)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...uv)).toBeLessThan(3);
    expect(uv.reduce((s, x) => s + x, 0) / uv.length).toBeCloseTo(1, 1);
    disposeAll(n, u);
  });

  it("continue the caller's Rng stream (consecutive draws differ)", () => {
    const rng = new Rng(3);
    const a = seededUniform([3], rng);
    const b = seededUniform([3], rng);
    expect(Array.from(a.dataSync())).not.toEqual(Array.from(b.dataSync()));
    disposeAll([a, b]);
  });
});

describe('disposeAll', () => {
  it('disposes nested arrays/objects, tolerates null and double disposal', () => {
    const before = tf.memory().numTensors;
    const a = tf.ones([2]);
    const b = tf.zeros([3]);
    const init = tf.ones([1]);
    const c = tf.variable(init);
    init.dispose();
    const d = tf.scalar(1);
    d.dispose();
    disposeAll([a, { inner: [b, null], v: c }], undefined, d, null);
    expect(a.isDisposed && b.isDisposed && c.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });
});

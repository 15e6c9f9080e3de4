/** Shared helpers for the tf tests: seeded data and cross-backend comparison. */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../trainer/src/core/rng.ts';
import { seededNormalValues } from '../../trainer/src/tf/tensor-utils.ts';

export function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function randn(shape: readonly number[], seed: number, std = 1): Float32Array {
  return seededNormalValues(size(shape), new Rng(seed), std);
}

/** Runs `fn` with `backend` active and returns every output as a plain array. */
export async function runOn(backend: string, fn: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const out = tf.tidy(fn);
  const list = Array.isArray(out) ? out : [out];
  const values = list.map((t) => Float32Array.from(t.dataSync() as ArrayLike<number>));
  tf.dispose(list);
  return values;
}

/** max |a−b| divided by max(1, max |b|): "absolute error relative to the scale of the reference". */
export function relMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

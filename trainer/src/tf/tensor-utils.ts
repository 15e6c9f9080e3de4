/**
 * Small tensor helpers for the trainer. Random tensors come from the run's
 * seeded Rng (not tf.random*) so that initialisation is reproducible across
 * backends and runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../core/rng.ts';

function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Float32 values ~ N(mean, std²) drawn from `rng`. */
export function seededNormalValues(n: number, rng: Rng, std = 1, mean = 0): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = mean + std * rng.normal();
  return v;
}

/** Float32 values ~ U[min, max) drawn from `rng`. */
export function seededUniformValues(n: number, rng: Rng, min = 0, max = 1): Float32Array {
  const v = new Float32Array(n);
  const span = max - min;
  for (let i = 0; i < n; i++) v[i] = min + span * rng.next();
  return v;
}

/** A float32 tensor ~ N(mean, std²) drawn from `rng`. */
export function seededNormal(shape: number[], rng: Rng, std = 1, mean = 0): tf.Tensor {
  return tf.tensor(seededNormalValues(size(shape), rng, std, mean), shape, 'float32');
}

/** A float32 tensor ~ U[min, max) drawn from `rng`. */
export function seededUniform(shape: number[], rng: Rng, min = 0, max = 1): tf.Tensor {
  return tf.tensor(seededUniformValues(size(shape), rng, min, max), shape, 'float32');
}

type Disposable = tf.Tensor | tf.Variable | null | undefined;
type DisposeTree = Disposable | readonly DisposeTree[] | { readonly [key: string]: DisposeTree };

/** Disposes every tensor found in arrays / plain objects (any nesting); skips null, undefined and already-disposed tensors. */
export function disposeAll(...items: DisposeTree[]): void {
  const visit = (item: DisposeTree): void => {
    if (item == null) return;
    if (item instanceof tf.Tensor) {
      if (!item.isDisposed) item.dispose();
      return;
    }
    if (Array.isArray(item)) {
      for (const x of item) visit(x);
      return;
    }
    for (const x of Object.values(item as { [key: string]: DisposeTree })) visit(x);
  };
  for (const item of items) visit(item);
}

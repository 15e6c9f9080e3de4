/** A head's variables to and from host tensors under their stable names (checkpoints, worker messages). */
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensors } from '../core/host-tensors.ts';

export function readNamedWeights(named: [string, tf.Variable][]): HostTensors {
  const out: HostTensors = new Map();
  for (const [name, v] of named) out.set(name, { shape: v.shape.slice(), data: v.dataSync() as Float32Array });
  return out;
}

/** Assigns every named variable its tensor; a missing name or another shape is an error naming it. */
export function assignNamedWeights(named: [string, tf.Variable][], weights: HostTensors): void {
  for (const [name, v] of named) {
    const t = weights.get(name);
    if (!t) throw new Error(`checkpoint lacks head weight "${name}"`);
    if (t.shape.join('x') !== v.shape.join('x'))
      throw new Error(
        `checkpoint weight "${name}" has shape ${t.shape.join('x')}, the model needs ${v.shape.join('x')}`,
      );
    tf.tidy(() => v.assign(tf.tensor(t.data, t.shape)));
  }
}

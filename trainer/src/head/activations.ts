import * as tf from '@tensorflow/tfjs-core';

/** Every activation the head can use, behind one lookup (configs name them). */
export const ACTIVATIONS = {
  relu: (x: tf.Tensor) => tf.relu(x),
  sigmoid: (x: tf.Tensor) => tf.sigmoid(x),
  linear: (x: tf.Tensor) => x,
  /**
   * Unit L2 norm per patch (rows of [N, P]). Bounds squared distances to [0, 4],
   * where log((d+1)/(d+1e-4)) has its useful range (docs/cub-preset.md, change 2).
   */
  l2norm: (x: tf.Tensor) => tf.div(x, tf.sqrt(tf.add(tf.sum(tf.square(x), -1, true), 1e-12))),
} as const;

export type ActivationName = keyof typeof ACTIVATIONS;
export const ACTIVATION_NAMES = Object.keys(ACTIVATIONS) as ActivationName[];

export function activation(name: ActivationName): (x: tf.Tensor) => tf.Tensor {
  return ACTIVATIONS[name];
}

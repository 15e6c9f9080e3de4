import * as tf from '@tensorflow/tfjs-core';

/** Every activation the head can use, behind one lookup (configs name them). */
export const ACTIVATIONS = {
  relu: (x: tf.Tensor) => tf.relu(x),
  sigmoid: (x: tf.Tensor) => tf.sigmoid(x),
  linear: (x: tf.Tensor) => x,
} as const;

export type ActivationName = keyof typeof ACTIVATIONS;
export const ACTIVATION_NAMES = Object.keys(ACTIVATIONS) as ActivationName[];

export function activation(name: ActivationName): (x: tf.Tensor) => tf.Tensor {
  return ACTIVATIONS[name];
}

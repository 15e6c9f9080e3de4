import * as tf from '@tensorflow/tfjs-core';
import { SIMILARITY_EPSILON } from '@protoatlas/shared';

/**
 * Squared L2 distances between every patch and every prototype, expanded as
 * ||z||^2 - 2 z.p + ||p||^2 so it is one matmul. z: [N, P], protos: [m, P] -> [N, m].
 * relu() removes tiny negatives from round-off (the true value is >= 0).
 */
export function squaredDistances(z: tf.Tensor2D, protos: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const zz = tf.sum(tf.square(z), 1, true); // [N,1]
    const pp = tf.reshape(tf.sum(tf.square(protos), 1), [1, -1]); // [1,m]
    const zp = tf.matMul(z, protos, false, true); // [N,m]
    return tf.relu(tf.add(tf.sub(zz, tf.mul(2, zp)), pp)) as tf.Tensor2D;
  });
}

/** log((d + 1) / (d + eps)), elementwise; the tensor form of shared's logSimilarity. */
export function logActivation(d: tf.Tensor, eps = SIMILARITY_EPSILON): tf.Tensor {
  return tf.tidy(() => tf.log(tf.div(tf.add(d, 1), tf.add(d, eps))));
}

import * as tf from '@tensorflow/tfjs-core';

/** Weights of the stage-1 loss terms (config `loss`); presence is optional, off in the paper. */
export interface LossWeights {
  crossEntropy: number;
  clusterCost: number;
  separationCost: number;
  presenceCost?: number;
  /** Weight of the distillation term (0 or absent: off) and its temperature. */
  distillation?: number;
  distillationTemperature?: number;
  /** Weight of the within-class orthogonality term (0 or absent: off). */
  orthogonality?: number;
  /** Weight of the shallow alignment term (0 or absent: off), its margin and the backbone's shallow tensor. */
  shallowAlignment?: number;
  shallowAlignmentMargin?: number;
  shallowAlignmentTensor?: string;
  /** Weight of the part localisation term (0 or absent: off), its radius in input pixels and its margin. */
  partLocalisation?: number;
  partLocalisationRadius?: number;
  partLocalisationMargin?: number;
}

/**
 * Cluster cost: for each image, the smallest distance to a prototype of its own
 * class, averaged over the batch. minDist: [B, m]; ownMask: [B, m] (1 where
 * prototype j belongs to image b's class).
 *
 * Masked-out entries are lifted by `maxD` (an upper bound of any distance) so
 * they can never win the min; same value as the reference code's
 * maxD - max((maxD - d) * mask) whenever d <= maxD.
 */
export function clusterCost(minDist: tf.Tensor2D, ownMask: tf.Tensor2D, maxD: number): tf.Scalar {
  return tf.tidy(() => {
    const lifted = tf.add(minDist, tf.mul(tf.sub(1, ownMask), 2 * maxD + 1));
    return tf.mean(tf.min(lifted, 1)) as tf.Scalar;
  });
}

/** Separation cost: the smallest distance to any other-class prototype, averaged (the loss subtracts it). */
export function separationCost(minDist: tf.Tensor2D, ownMask: tf.Tensor2D, maxD: number): tf.Scalar {
  return tf.tidy(() => clusterCost(minDist, tf.sub(1, ownMask) as tf.Tensor2D, maxD));
}

/**
 * Presence cost: for each image, the mean over its class's prototypes of their smallest distance to
 * the image's patches, averaged over the batch. Every own-class prototype counts (not only the
 * nearest, as in Clst), so each prototype is pulled onto a patch of every image of its class.
 */
export function presenceCost(minDist: tf.Tensor2D, ownMask: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const perImage = tf.div(tf.sum(tf.mul(minDist, ownMask), 1), tf.maximum(tf.sum(ownMask, 1), 1));
    return tf.mean(perImage) as tf.Scalar;
  });
}

/**
 * Orthogonality of each class's prototypes (Huang et al., ICCV 2023, after TesNet): the sum over
 * classes of ||P_c P_c^T - I||_1, P_c the class's prototypes scaled to unit length, that is the
 * sum of |cos| over every ordered pair of distinct prototypes of a class. `groups` [C, K] lists
 * each class's prototype indices. Zero when a class's prototypes are mutually orthogonal.
 */
export function orthogonalityCost(prototypes: tf.Tensor2D, groups: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [C, K] = groups.shape;
    const unit = tf.div(prototypes, tf.maximum(tf.norm(prototypes, 2, 1, true), 1e-12));
    const byClass = tf.reshape(tf.gather(unit, tf.reshape(groups, [-1])), [C, K, prototypes.shape[1]]) as tf.Tensor3D;
    const gram = tf.matMul(byClass, byClass, false, true);
    return tf.sum(tf.abs(tf.sub(gram, tf.eye(K)))) as tf.Scalar;
  });
}

/**
 * Part localisation: for image b and its k-th own-class prototype, with `mask` [B, K, HW] marking the
 * patches on the prototype's part, relu(min over on-part patches of d − min over the others of d + margin),
 * d the squared distance; averaged over the (b, k) pairs whose mask marks any patch (0 without any).
 * `z` [B·HW, P] patch embeddings (image-major); `own` [B, K, P] each image's own-class prototypes.
 * Zero once the prototype's best on-part patch beats every other patch by the margin.
 * Also returns, per pair with a target, whether the best patch already lies on the part.
 */
export function partLocalisationCost(
  z: tf.Tensor2D,
  own: tf.Tensor3D,
  mask: Uint8Array,
  margin: number,
): { cost: tf.Scalar; pairs: number; hits: number } {
  const [b, k] = own.shape;
  const hw = z.shape[0] / b;
  const valid = new Float32Array(b * k);
  let pairs = 0;
  for (let r = 0; r < b * k; r++)
    for (let q = 0; q < hw; q++)
      if (mask[r * hw + q]) {
        valid[r] = 1;
        pairs++;
        break;
      }
  if (pairs === 0) return { cost: tf.scalar(0), pairs: 0, hits: 0 };
  let hits = 0;
  const cost = tf.tidy(() => {
    const zb = tf.reshape(z, [b, hw, z.shape[1]]) as tf.Tensor3D;
    // [B, K, HW] squared distances, as the head computes them.
    const cross = tf.matMul(own, zb, false, true);
    const d = tf.add(
      tf.sub(tf.expandDims(tf.sum(tf.square(zb), -1), 1), tf.mul(cross, 2)),
      tf.expandDims(tf.sum(tf.square(own), -1), 2),
    );
    const on = tf.tensor3d(Float32Array.from(mask), [b, k, hw]);
    // Lifting the other side by more than any distance keeps it out of each min.
    const lift = tf.max(d).dataSync()[0] + 1;
    const onMin = tf.min(tf.add(d, tf.mul(tf.sub(1, on), lift)), -1);
    const offMin = tf.min(tf.add(d, tf.mul(on, lift)), -1);
    const hinge = tf.relu(tf.add(tf.sub(onMin, offMin), margin));
    const v = tf.tensor2d(valid, [b, k]);
    const won = tf.lessEqual(onMin, offMin).dataSync();
    valid.forEach((x, r) => (hits += x && won[r] ? 1 : 0));
    return tf.div(tf.sum(tf.mul(hinge, v)), pairs) as tf.Scalar;
  });
  return { cost, pairs, hits };
}

/** Mean softmax cross-entropy with integer labels. logits [B, C], labels int32 [B]. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const onehot = tf.oneHot(labels, logits.shape[1]);
    return tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), 1))) as tf.Scalar;
  });
}

/**
 * Distillation (Hinton et al. 2015): T^2 * mean over the batch of KL(teacher || softmax(logits / T)).
 * teacherProbs [B, C] are the teacher's softmax at the same temperature; T^2 keeps the gradient's
 * scale independent of T. Zero when the model's softened prediction equals the teacher's.
 */
export function distillationLoss(logits: tf.Tensor2D, teacherProbs: tf.Tensor2D, temperature: number): tf.Scalar {
  return tf.tidy(() => {
    const logq = tf.logSoftmax(tf.div(logits, temperature));
    // 0 log 0 = 0: the clamp only guards the log; those terms are multiplied by 0.
    const logp = tf.log(tf.maximum(teacherProbs, 1e-30));
    const kl = tf.sum(tf.mul(teacherProbs, tf.sub(logp, logq)), 1);
    return tf.mul(tf.mean(kl), temperature * temperature) as tf.Scalar;
  });
}

/** L1 norm of the last layer restricted to wrong-class connections. W, mask: [m, C]. */
export function maskedL1(weights: tf.Tensor2D, mask: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.abs(tf.mul(weights, mask))) as tf.Scalar);
}

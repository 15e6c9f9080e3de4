import * as tf from '@tensorflow/tfjs-core';
import { crossEntropy, maskedL1 } from '../head/losses.ts';
import { wrongClassMask, wrongClassSparsity } from '../head/last-layer.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import { Adam } from '../optim/adam.ts';
import { Progress } from '../core/progress.ts';
import type { Rng } from '../core/rng.ts';
import type { FeatureSource } from './sources.ts';
import type { GradPool } from './grad-pool.ts';
import { accuracy, similaritiesOf } from './predict.ts';

/**
 * Similarity vectors [n, m] of every item (optionally also its mirrored copy), spread over the
 * gradient threads when `pool` holds the source. Stage 3 only trains the last layer, so these
 * are computed once.
 */
export async function computeSimilarities(
  head: ProtoHead,
  source: FeatureSource,
  opts: { flip: boolean; batchSize?: number; quiet?: boolean; pool?: GradPool | null },
): Promise<{ sims: Float32Array; labels: Int32Array; n: number }> {
  const m = head.numPrototypes;
  const copies = opts.flip && source.canFlip ? 2 : 1;
  const n = source.n * copies;
  const sims = new Float32Array(n * m);
  const labels = new Int32Array(n);
  const progress = new Progress({ label: 'similarities', total: n, unit: 'img', quiet: opts.quiet });
  for (let copy = 0; copy < copies; copy++) {
    const part = await similaritiesOf(head, source, {
      mirrored: copy === 1,
      pool: opts.pool,
      progress,
      batchSize: opts.batchSize,
    });
    sims.set(part, copy * source.n * m);
    labels.set(source.labels, copy * source.n);
  }
  progress.finish();
  return { sims, labels, n };
}

export interface LastLayerEpoch {
  loss: number;
  crossEntropy: number;
  l1: number;
  trainAccuracy: number;
}

export interface LastLayerSettings {
  lr: number;
  l1: number;
  /** 'proximal': the L1 term is a soft-threshold step (exact zeros); 'subgradient': its gradient, as the paper. */
  l1Solver: 'proximal' | 'subgradient';
}

/** The mask of wrong-class connections, as a tensor (the caller disposes it). */
export function wrongClassMaskTensor(head: ProtoHead): tf.Tensor2D {
  const host = wrongClassMask(head.protoClass, head.spec.numClasses);
  return tf.tensor2d(host.data, host.shape as [number, number]);
}

/**
 * Stage 3's optimiser over the last layer. With the proximal solver the L1 term
 * lives in the optimiser (soft-thresholding after each Adam step), so the
 * objective CE + l1·|W ⊙ mask| is minimised with wrong-class weights reaching exactly 0.
 */
export function lastLayerOptimizer(head: ProtoHead, settings: LastLayerSettings, mask: tf.Tensor2D): Adam {
  // Set even when l1 is 0: the optimiser is what tells trainLastLayerEpoch that the solver is proximal.
  const l1 = settings.l1Solver === 'proximal' ? { lambda: settings.l1, mask } : undefined;
  return new Adam([{ name: 'lastLayer', lr: settings.lr, vars: [['head.last_layer', head.lastLayer]], l1 }]);
}

/** Whether an optimiser applies an L1 proximal step (lastLayerOptimizer with the proximal solver). */
export function isProximal(optimizer: Adam): boolean {
  return optimizer.groups.some((g) => g.l1 !== undefined);
}

/**
 * One epoch of stage 3: CE + l1·|W ⊙ wrong-class mask| on precomputed similarities.
 * With a proximal optimiser (lastLayerOptimizer), the optimiser applies the L1 term, so the gradient is CE's
 * alone, and rows are recentred after the epoch.
 */
export function trainLastLayerEpoch(args: {
  head: ProtoHead;
  data: { sims: Float32Array; labels: Int32Array; n: number };
  batchSize: number;
  l1: number;
  optimizer: Adam;
  rng: Rng;
}): LastLayerEpoch {
  const { head, data, optimizer, rng } = args;
  const m = head.numPrototypes;
  const mask = wrongClassMaskTensor(head);
  const proximal = isProximal(optimizer);
  const l1Gradient = proximal ? 0 : args.l1;
  const order = rng.shuffle(Array.from({ length: data.n }, (_, i) => i));
  let lossSum = 0;
  let ceSum = 0;
  let correct = 0;
  let l1Last = 0;
  for (let s = 0; s < order.length; s += args.batchSize) {
    const batch = order.slice(s, s + args.batchSize);
    const x = new Float32Array(batch.length * m);
    batch.forEach((i, k) => x.set(data.sims.subarray(i * m, (i + 1) * m), k * m));
    const labels = Int32Array.from(batch, (i) => data.labels[i]);
    if (proximal) {
      const step = proximalStep(head, x, labels, mask, optimizer);
      lossSum += (step.ce + args.l1 * step.l1) * batch.length;
      ceSum += step.ce * batch.length;
      l1Last = step.l1;
      correct += step.correct;
      continue;
    }
    let parts = [0, 0, 0];
    const { value, grads } = tf.variableGrads(() => {
      const logits = tf.matMul(tf.tensor2d(x, [batch.length, m]), head.lastLayer as tf.Tensor2D) as tf.Tensor2D;
      const ce = crossEntropy(logits, tf.tensor1d(labels, 'int32'));
      const l1 = maskedL1(head.lastLayer as tf.Tensor2D, mask);
      const pred = tf.argMax(logits, 1).dataSync();
      let c = 0;
      pred.forEach((p, k) => (c += p === labels[k] ? 1 : 0));
      parts = [ce.dataSync()[0], l1.dataSync()[0], c];
      return tf.add(ce, tf.mul(l1, l1Gradient)) as tf.Scalar;
    }, [head.lastLayer]);
    optimizer.apply(grads);
    lossSum += (value.dataSync()[0] + (proximal ? args.l1 * parts[1] : 0)) * batch.length;
    tf.dispose([value, ...Object.values(grads)]);
    ceSum += parts[0] * batch.length;
    l1Last = parts[1];
    correct += parts[2];
  }
  mask.dispose();
  // The L1 optimum within each row's softmax-invariant shift (recenterRows): exact, and free.
  if (proximal) recenterRows(head);
  const n = Math.max(1, data.n);
  return { loss: lossSum / n, crossEntropy: ceSum / n, l1: l1Last, trainAccuracy: correct / n };
}

/**
 * One batch of stage 3 when the optimiser applies the L1 term: the gradient is
 * cross-entropy's alone, written out (xᵀ (softmax − onehot) / B) with the
 * transpose built here, as autograd's transposed product is most of a step's cost.
 */
function proximalStep(
  head: ProtoHead,
  x: Float32Array,
  labels: Int32Array,
  mask: tf.Tensor2D,
  optimizer: Adam,
): { ce: number; l1: number; correct: number } {
  const m = head.numPrototypes;
  const b = labels.length;
  const xT = new Float32Array(m * b);
  for (let k = 0; k < b; k++) for (let j = 0; j < m; j++) xT[j * b + k] = x[k * m + j];
  const w = head.lastLayer as tf.Tensor2D;
  const { ce, l1, pred, grad } = tf.tidy(() => {
    const logits = tf.matMul(tf.tensor2d(x, [b, m]), w);
    const logp = tf.logSoftmax(logits);
    const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), head.spec.numClasses);
    const d = tf.div(tf.sub(tf.exp(logp), onehot), b);
    return {
      ce: tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), 1))),
      l1: maskedL1(w, mask),
      pred: tf.argMax(logits, 1),
      grad: tf.matMul(tf.tensor2d(xT, [m, b]), d),
    };
  });
  optimizer.apply({ [head.lastLayer.name]: grad });
  const predicted = pred.dataSync();
  let correct = 0;
  predicted.forEach((p, k) => (correct += p === labels[k] ? 1 : 0));
  const out = { ce: ce.dataSync()[0], l1: l1.dataSync()[0], correct };
  tf.dispose([ce, l1, pred, grad]);
  return out;
}

/**
 * Moves each prototype's row of the last layer by a constant so that the median
 * of its wrong-class weights is 0. Adding k to every weight of row j adds
 * k * similarity_j to every class's logit alike, which softmax ignores: logits,
 * predictions and cross-entropy are unchanged, and the median is the shift that
 * minimises the row's wrong-class L1 norm. So the paper's +1/-0.5 start is the
 * same classifier as +1.5/0, and stage 3 can start (and stay) at exact zeros
 * without paying any accuracy for them.
 */
export function recenterRows(head: ProtoHead): void {
  const C = head.spec.numClasses;
  const m = head.numPrototypes;
  const w = head.lastLayer.dataSync().slice() as Float32Array;
  const wrong = new Float32Array(Math.max(0, C - 1));
  for (let j = 0; j < m; j++) {
    const own = head.protoClass[j];
    let k = 0;
    for (let c = 0; c < C; c++) if (c !== own) wrong[k++] = w[j * C + c];
    if (!k) continue;
    wrong.sort();
    const median = k % 2 ? wrong[(k - 1) / 2] : (wrong[k / 2 - 1] + wrong[k / 2]) / 2;
    // Entries equal to the median become exactly 0 (x - x == 0 in floating point).
    for (let c = 0; c < C; c++) w[j * C + c] -= median;
  }
  head.lastLayer.assign(tf.tensor2d(w, [m, C]));
}

/** Share of wrong-class weights with |w| < tol; tol 0 counts weights that are exactly 0. */
export function lastLayerSparsity(head: ProtoHead, tol = 1e-3): number {
  const w = head.lastLayer.dataSync() as Float32Array;
  return wrongClassSparsity({ shape: head.lastLayer.shape.slice(), data: w }, head.protoClass, tol);
}

/** Accuracy of the current last layer on precomputed similarities (no need to rerun the head). */
export function similarityAccuracy(
  head: ProtoHead,
  data: { sims: Float32Array; labels: Int32Array; n: number },
): { top1: number; top5: number; perClass: number[]; n: number } | null {
  if (!data.n) return null;
  const m = head.numPrototypes;
  const logits = tf.tidy(
    () => tf.matMul(tf.tensor2d(data.sims, [data.n, m]), head.lastLayer as tf.Tensor2D).dataSync() as Float32Array,
  );
  return accuracy({ n: data.n, numClasses: head.spec.numClasses, logits, labels: data.labels });
}

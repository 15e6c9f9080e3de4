/**
 * Stage 3 again, with some prototypes removed: their similarities are zeroed
 * and their last-layer rows set to 0, then the last layer is re-optimised on
 * precomputed similarities. Used by the prune stage and by edits (drop, relabel).
 */
import * as tf from '@tensorflow/tfjs-core';
import { maskSimilarities } from './prune.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import type { TrainConfig } from '../config/config.ts';
import type { Rng } from '../core/rng.ts';
import {
  lastLayerOptimizer,
  recenterRows,
  similarityAccuracy,
  trainLastLayerEpoch,
  wrongClassMaskTensor,
} from './last-layer.ts';

export interface Similarities {
  sims: Float32Array;
  labels: Int32Array;
  n: number;
}

export interface RefitResult {
  /** Validation top-1 of the kept weights (NaN without validation data). */
  top1: number;
  /** Epoch whose weights were kept (0 = as they were after zeroing). */
  epoch: number;
}

/** Set the rows of removed prototypes to exactly 0. */
export function zeroRows(head: ProtoHead, removed: ArrayLike<boolean>): void {
  const C = head.spec.numClasses;
  const m = head.numPrototypes;
  const w = head.lastLayer.dataSync().slice() as Float32Array;
  for (let j = 0; j < m; j++) if (removed[j]) w.fill(0, j * C, (j + 1) * C);
  head.lastLayer.assign(tf.tensor2d(w, [m, C]));
}

/**
 * Zero the removed prototypes, then train the last layer for `ll.epochs` on
 * `train` similarities (removed columns masked, so their rows get no gradient),
 * keeping the best validation epoch when `lastLayerConfig.selectBest`.
 */
export function refitLastLayer(args: {
  head: ProtoHead;
  train: Similarities;
  val: Similarities | null;
  lastLayerConfig: TrainConfig['lastLayer'];
  removed: ArrayLike<boolean>;
  rng: Rng;
}): RefitResult {
  const { head, lastLayerConfig, removed } = args;
  const m = head.numPrototypes;
  const C = head.spec.numClasses;
  zeroRows(head, removed);
  // As stage 3 does: rows start with their wrong-class weights at zero (a per-row shift the softmax ignores).
  if (lastLayerConfig.l1Solver === 'proximal') recenterRows(head);
  const masked = { ...args.train, sims: maskSimilarities(args.train.sims, m, removed) };
  const valMasked = args.val ? { ...args.val, sims: maskSimilarities(args.val.sims, m, removed) } : null;
  const score = () => (valMasked?.n ? similarityAccuracy(head, valMasked)!.top1 : NaN);
  // The wrong-class mask follows head.protoClass, so a relabelled prototype is penalised towards its new class.
  const mask = wrongClassMaskTensor(head);
  const optimizer = lastLayerOptimizer(head, lastLayerConfig, mask);
  let best = { top1: score(), epoch: 0, weights: head.lastLayer.dataSync().slice() as Float32Array };
  for (let e = 0; e < lastLayerConfig.epochs; e++) {
    trainLastLayerEpoch({
      head,
      data: masked,
      batchSize: lastLayerConfig.batchSize,
      l1: lastLayerConfig.l1,
      optimizer,
      rng: args.rng,
    });
    const s = score();
    if (lastLayerConfig.selectBest && (s > best.top1 || Number.isNaN(best.top1)))
      best = { top1: s, epoch: e + 1, weights: head.lastLayer.dataSync().slice() as Float32Array };
  }
  optimizer.dispose();
  mask.dispose();
  if (lastLayerConfig.selectBest) head.lastLayer.assign(tf.tensor2d(best.weights, [m, C]));
  // Whatever the optimiser does to rows without gradient, a removed prototype must not vote.
  zeroRows(head, removed);
  return lastLayerConfig.selectBest
    ? { top1: best.top1, epoch: best.epoch }
    : { top1: score(), epoch: lastLayerConfig.epochs };
}

/**
 * Concept-level debugging (ProtoPDebug, Bontempelli et al., ICLR 2023): fine-tune
 * the add-on layers and prototypes with the usual ProtoPNet loss plus a
 * forgetting term (the mean similarity of the live prototypes to each forbidden patch)
 * and minus a remembering term (the similarity of each kept patch to the
 * prototypes of its class). Patches are single feature-grid cells read from the
 * fixed backbone's features, so no backbone runs here. The last layer stays
 * fixed; the caller re-pushes and refits it. With a gradient pool, each batch's
 * data term is split over its threads (as in training); the concept terms, a few
 * patches, stay on this thread.
 */
import * as tf from '@tensorflow/tfjs-core';
import { classIdentity } from '../head/last-layer.ts';
import { logActivation } from '../head/distances.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import type { LossWeights } from '../head/losses.ts';
import { Adam } from '../optim/adam.ts';
import { type PhaseConfig, PhaseSchema } from '../config/config.ts';
import { Progress } from '../core/progress.ts';
import type { Rng } from '../core/rng.ts';
import { disposeGradContext, gradContext, microBatchGrads, splitBatch, type MicroBatch } from './grad-step.ts';
import type { GradPool } from './grad-pool.ts';
import { phaseGroups } from './prototype-phase.ts';
import type { FeatureSource } from './sources.ts';

/** Backbone features of concept patches: [n, D], with the class of each patch's image. */
export interface ConceptPatches {
  n: number;
  features: Float32Array;
  classes: Int32Array;
}

export interface ForgetOptions {
  /**
   * Optimiser steps (batches); passes over the data repeat as needed. A step count,
   * not epochs: the cost then does not grow with the dataset.
   */
  steps: number;
  batchSize: number;
  lr: { addOn: number; prototypes: number };
  /** λ of the forgetting term (a mean over live prototypes, so one λ suits any prototype count). */
  forget: number;
  /** λ of the remembering term. */
  remember: number;
}

export const DEFAULT_FORGET: ForgetOptions = {
  steps: 150,
  batchSize: 32,
  lr: { addOn: 1e-3, prototypes: 1e-3 },
  forget: 1.5,
  remember: 1,
};

/** Figures of one pass over the training data (the last may be partial). */
export interface ForgetEpoch {
  epoch: number;
  steps: number;
  loss: number;
  crossEntropy: number;
  forgetting: number;
  remembering: number;
  trainAccuracy: number;
  seconds: number;
}

/**
 * Patches per chunk of the concept terms: their [rows, m, P] explicit differences stay within
 * 2^24 floats, so thousands of patches (a concept found from annotations) fit the wasm heap.
 */
export function conceptChunkRows(head: ProtoHead): number {
  return Math.max(1, Math.floor(2 ** 24 / (head.numPrototypes * head.prototypeDim)));
}

/**
 * Similarity [end - start, m] of patches start..end-1 (backbone features [n, D]) to each prototype.
 * Distances from explicit differences: the expanded form's relu clamps round-off
 * below 0 and would cut the gradient exactly where a prototype sits on a patch.
 */
function rangeSimilarities(head: ProtoHead, patches: ConceptPatches, [start, end]: [number, number]): tf.Tensor2D {
  return tf.tidy(() => {
    const D = head.spec.inputChannels;
    const f = tf.tensor4d(patches.features.subarray(start * D, end * D), [end - start, 1, 1, D]);
    const z = head.embed(f, undefined, true);
    const diff = tf.sub(tf.expandDims(z, 1), tf.expandDims(head.currentPrototypes(), 0));
    return logActivation(tf.sum(tf.square(diff), 2), head.epsilon) as tf.Tensor2D;
  });
}

/** Similarity [n, m] of each patch to each prototype, computed a chunk of patches at a time. */
export function patchSimilarities(head: ProtoHead, patches: ConceptPatches): tf.Tensor2D {
  const rows = conceptChunkRows(head);
  const parts: tf.Tensor2D[] = [];
  for (let s = 0; s < patches.n; s += rows)
    parts.push(rangeSimilarities(head, patches, [s, Math.min(patches.n, s + rows)]));
  if (parts.length === 1) return parts[0];
  const out = tf.concat(parts, 0) as tf.Tensor2D;
  tf.dispose(parts);
  return out;
}

/**
 * Forgetting term: the mean similarity over (forbidden patch, live prototype) pairs.
 * ProtoPDebug sums over prototypes (its CUB runs had 40); a sum grows with their
 * number while the data term (CE, clustering, separation: per-image averages) does
 * not, so one λ cannot suit 40 and 2,000 prototypes. The mean keeps the term on the
 * data term's scale whatever the count: duplicating every prototype leaves it unchanged.
 * With `range`, the share of the term that patches range[0]..range[1]-1 contribute (the shares add up to it).
 */
export function forgettingLoss(
  head: ProtoHead,
  forbidden: ConceptPatches,
  live?: tf.Tensor1D,
  range: [number, number] = [0, forbidden.n],
): tf.Scalar {
  return tf.tidy(() => {
    const sims = rangeSimilarities(head, forbidden, range);
    const count = live ? tf.maximum(tf.sum(live), 1) : tf.scalar(head.numPrototypes);
    const total = live ? tf.sum(tf.mul(sims, live)) : tf.sum(sims);
    return tf.div(total, tf.mul(count, forbidden.n)) as tf.Scalar;
  });
}

/**
 * Remembering term: mean over kept patches of the summed similarity to their own class's prototypes;
 * with `range`, the share of patches range[0]..range[1]-1.
 */
export function rememberingLoss(
  head: ProtoHead,
  keep: ConceptPatches,
  live?: tf.Tensor1D,
  range: [number, number] = [0, keep.n],
): tf.Scalar {
  return tf.tidy(() => {
    const sims = rangeSimilarities(head, keep, range);
    const id = classIdentity(head.protoClass, head.spec.numClasses);
    const own = tf.gather(
      tf.transpose(tf.tensor2d(id.data, id.shape as [number, number])),
      tf.tensor1d(keep.classes.subarray(range[0], range[1]), 'int32'),
    );
    const mask = live ? tf.mul(own, live) : own;
    return tf.div(tf.sum(tf.mul(sims, mask)), keep.n) as tf.Scalar;
  });
}

/**
 * Gradients of λf·forgetting − λr·remembering, a chunk of patches at a time (each chunk's tape is freed
 * before the next), summed; with the two terms' values.
 */
export function conceptGrads(
  head: ProtoHead,
  concepts: { forbidden: ConceptPatches | null; keep: ConceptPatches | null },
  live: tf.Tensor1D,
  weights: { forget: number; remember: number },
  vars: tf.Variable[],
  rows = conceptChunkRows(head),
): { grads: tf.Tensor[]; terms: [number, number] } {
  const grads = vars.map((v) => tf.zerosLike(v));
  const terms: [number, number] = [0, 0];
  const parts: [ConceptPatches | null, number, number, typeof forgettingLoss][] = [
    [concepts.forbidden, 0, weights.forget, forgettingLoss],
    [concepts.keep, 1, -weights.remember, rememberingLoss],
  ];
  for (const [set, k, weight, loss] of parts) {
    if (!set) continue;
    for (let s = 0; s < set.n; s += rows) {
      const g = tf.variableGrads(() => {
        const l = loss(head, set, live, [s, Math.min(set.n, s + rows)]);
        terms[k] += l.dataSync()[0];
        return tf.mul(l, weight) as tf.Scalar;
      }, vars);
      vars.forEach((v, i) => {
        const d = g.grads[v.name];
        if (!d) return;
        const prev = grads[i];
        grads[i] = tf.add(prev, d);
        prev.dispose();
      });
      tf.dispose([g.value, ...Object.values(g.grads)]);
    }
  }
  return { grads, terms };
}

/**
 * Fine-tune add-on and prototypes on `train` (fixed backbone features) with
 * CE + Clst + Sep + λf·forgetting − λr·remembering. `removed` prototypes are
 * left out of both concept terms (they no longer vote).
 */
export async function forgetConcepts(args: {
  head: ProtoHead;
  train: FeatureSource;
  loss: LossWeights;
  forbidden: ConceptPatches | null;
  keep: ConceptPatches | null;
  removed: ArrayLike<boolean>;
  options: ForgetOptions;
  rng: Rng;
  quiet?: boolean;
  /** Gradient threads over `train`'s shared features (null: this thread alone). */
  pool?: GradPool | null;
}): Promise<ForgetEpoch[]> {
  const { head, train, options: o, rng } = args;
  // One constant-rate epoch; the rest of the phase settings are the schema's defaults.
  const phase: PhaseConfig = PhaseSchema.parse({
    epochs: 1,
    batchSize: o.batchSize,
    lr: { features: 0, addOn: o.lr.addOn, prototypes: o.lr.prototypes, lastLayer: 0 },
    schedule: 'constant',
  });
  if (head.isTied) head.untie();
  const optimizer = new Adam(phaseGroups(phase, head, null));
  const vars = optimizer.variables();
  const ctx = gradContext({
    head,
    source: train,
    loss: args.loss,
    vars,
    trainsFeatures: false,
    backboneTraining: false,
  });
  const pool = args.pool ?? null;
  if (pool) {
    const names = optimizer.groups.flatMap((g) => g.vars.map(([n]) => n));
    await pool.beginPhase({ phase, loss: args.loss, backboneTraining: false, names }, head, null);
  }
  const local = (mb: MicroBatch) => microBatchGrads(ctx, mb);
  const live = tf.tensor1d(Float32Array.from({ length: head.numPrototypes }, (_, j) => (args.removed[j] ? 0 : 1)));
  const out: ForgetEpoch[] = [];
  try {
    const perPass = Math.ceil(train.n / o.batchSize);
    const passes = Math.ceil(o.steps / Math.max(1, perPass));
    let done = 0;
    for (let e = 0; e < passes && done < o.steps; e++) {
      const t0 = Date.now();
      const order = rng.shuffle(Array.from({ length: train.n }, (_, i) => i)).slice(0, (o.steps - done) * o.batchSize);
      const sums = { loss: 0, ce: 0, forget: 0, remember: 0, correct: 0 };
      let steps = 0;
      const progress = new Progress({
        label: `forget ${e + 1}/${passes}`,
        total: order.length,
        unit: 'img',
        quiet: args.quiet,
      });
      for (let s = 0; s < order.length; s += o.batchSize) {
        steps++;
        const indices = order.slice(s, s + o.batchSize);
        const flipped = indices.map(() => train.canFlip && rng.next() < 0.5);
        const labels = Int32Array.from(indices, (i) => train.labels[i]);
        const threads = pool?.threads ?? 1;
        const micro = Math.ceil(indices.length / threads);
        const jobs = splitBatch({ indices, flipped, labels }, micro, head.spec.inputChannels);
        const results = pool ? await pool.run(jobs, ctx, local) : jobs.map(local);
        // Summed in micro-batch order whichever thread computed them (each is weighted by its share).
        let dataGrads = results[0].grads;
        for (const r of results.slice(1)) {
          const prev = dataGrads;
          dataGrads = prev.map((g, k) => tf.add(g, r.grads[k]));
          tf.dispose([...prev, ...r.grads]);
        }
        const dataValue = results.reduce((a, r) => a + r.value, 0);
        const part = (t: number) => results.reduce((a, r, j) => a + r.terms[t] * jobs[j].weight, 0);
        const concept = conceptGrads(head, { forbidden: args.forbidden, keep: args.keep }, live, o, vars);
        const terms = concept.terms;
        const grads = Object.fromEntries(vars.map((v, k) => [v.name, tf.add(dataGrads[k], concept.grads[k])]));
        optimizer.apply(grads);
        pool?.syncVariables(vars);
        const total = dataValue + o.forget * terms[0] - o.remember * terms[1];
        tf.dispose([...dataGrads, ...concept.grads, ...Object.values(grads)]);
        if (!Number.isFinite(total))
          throw new Error(`forget: loss became ${total}; lower --forget-lr or --forget-weight`);
        const b = indices.length;
        sums.loss += total * b;
        sums.ce += part(0) * b;
        sums.forget += terms[0] * b;
        sums.remember += terms[1] * b;
        sums.correct += results.reduce((a, r) => a + r.terms[3], 0);
        progress.tick(
          b,
          `loss ${(sums.loss / Math.min(s + b, order.length)).toFixed(3)} forget ${terms[0].toFixed(3)}`,
        );
      }
      progress.finish();
      done += steps;
      const n = Math.max(1, order.length);
      out.push({
        epoch: e + 1,
        steps,
        loss: sums.loss / n,
        crossEntropy: sums.ce / n,
        forgetting: sums.forget / n,
        remembering: sums.remember / n,
        trainAccuracy: sums.correct / n,
        seconds: (Date.now() - t0) / 1000,
      });
    }
  } finally {
    live.dispose();
    disposeGradContext(ctx);
    optimizer.dispose();
  }
  return out;
}

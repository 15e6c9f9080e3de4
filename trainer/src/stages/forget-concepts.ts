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
 * Similarity [n, m] of each patch (backbone features [n, D]) to each prototype.
 * Distances from explicit differences: the expanded form's relu clamps round-off
 * below 0 and would cut the gradient exactly where a prototype sits on a patch.
 */
export function patchSimilarities(head: ProtoHead, patches: ConceptPatches): tf.Tensor2D {
  return tf.tidy(() => {
    const f = tf.tensor4d(patches.features, [patches.n, 1, 1, head.spec.inputChannels]);
    const z = head.embed(f, undefined, true);
    const diff = tf.sub(tf.expandDims(z, 1), tf.expandDims(head.currentPrototypes(), 0));
    return logActivation(tf.sum(tf.square(diff), 2), head.epsilon) as tf.Tensor2D;
  });
}

/**
 * Forgetting term: the mean similarity over (forbidden patch, live prototype) pairs.
 * ProtoPDebug sums over prototypes (its CUB runs had 40); a sum grows with their
 * number while the data term (CE, clustering, separation: per-image averages) does
 * not, so one λ cannot suit 40 and 2,000 prototypes. The mean keeps the term on the
 * data term's scale whatever the count: duplicating every prototype leaves it unchanged.
 */
export function forgettingLoss(head: ProtoHead, forbidden: ConceptPatches, live?: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const sims = patchSimilarities(head, forbidden);
    if (!live) return tf.mean(sims) as tf.Scalar;
    const count = tf.maximum(tf.sum(live), 1);
    return tf.div(tf.mean(tf.sum(tf.mul(sims, live), 1)), count) as tf.Scalar;
  });
}

/** Remembering term: mean over kept patches of the summed similarity to their own class's prototypes. */
export function rememberingLoss(head: ProtoHead, keep: ConceptPatches, live?: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const sims = patchSimilarities(head, keep);
    const id = classIdentity(head.protoClass, head.spec.numClasses);
    const own = tf.gather(
      tf.transpose(tf.tensor2d(id.data, id.shape as [number, number])),
      tf.tensor1d(keep.classes, 'int32'),
    );
    const mask = live ? tf.mul(own, live) : own;
    return tf.mean(tf.sum(tf.mul(sims, mask), 1)) as tf.Scalar;
  });
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
        let terms = [0, 0];
        const concept = tf.variableGrads(() => {
          const f = args.forbidden ? forgettingLoss(head, args.forbidden, live) : tf.scalar(0);
          const r = args.keep ? rememberingLoss(head, args.keep, live) : tf.scalar(0);
          terms = [f.dataSync()[0], r.dataSync()[0]];
          return tf.sub(tf.mul(f, o.forget), tf.mul(r, o.remember)) as tf.Scalar;
        }, vars);
        const grads = Object.fromEntries(vars.map((v, k) => [v.name, tf.add(dataGrads[k], concept.grads[v.name])]));
        optimizer.apply(grads);
        pool?.syncVariables(vars);
        const total = dataValue + concept.value.dataSync()[0];
        tf.dispose([...dataGrads, concept.value, ...Object.values(concept.grads), ...Object.values(grads)]);
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

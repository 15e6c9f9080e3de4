/**
 * One micro-batch's share of a stage-1 step: CE + λ1·Clst + λ2·Sep (+ presence, distillation,
 * orthogonality, shallow alignment and part localisation when weighted), weighted by the micro-batch's share of the batch,
 * and its gradients.
 * The main thread and the gradient workers (grad-worker.ts) run this same function, so a batch split
 * across threads sums to the update one thread would make.
 */
import * as tf from '@tensorflow/tfjs-core';
import { classGroups, classIdentity } from '../head/last-layer.ts';
import {
  clusterCost,
  crossEntropy,
  distillationLoss,
  type LossWeights,
  orthogonalityCost,
  partLocalisationCost,
  presenceCost,
  separationCost,
} from '../head/losses.ts';
import { PooledLinearHead } from '../head/pooled-linear-head.ts';
import { nearestOwnPatches, shallowAlignmentCost, shallowSimilarityRows } from '../head/shallow-alignment.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import type { TrainedHead } from '../head/trained-head.ts';
import type { FeatureSource } from './sources.ts';

/** A micro-batch with every random choice already drawn (structured-cloneable, for workers). */
export interface MicroBatch {
  indices: number[];
  flipped: boolean[];
  /** Per-item augmentation seeds; absent when the source does not augment. */
  augmentSeeds?: number[];
  /** Channel-dropout mask [n, D]. */
  dropMask?: Float32Array;
  labels: Int32Array;
  /** The teacher's softened class probabilities [n, C] (with loss.distillation). */
  teacher?: Float32Array;
  /** Part localisation targets [n, perClass, H·W] (with loss.partLocalisation, in the phases it acts in). */
  partMask?: Uint8Array;
  /** This micro-batch's share of the batch (its loss is a batch mean). */
  weight: number;
}

export interface MicroResult {
  /** Weighted total loss. */
  value: number;
  /** Unweighted cross-entropy, cluster and separation costs, and the count of correct predictions. */
  terms: [number, number, number, number];
  /** The unweighted shallow alignment cost, when the term acts. */
  alignment?: number;
  /** The unweighted part localisation cost, its (image, prototype) pairs and those already on their part. */
  localisation?: { cost: number; pairs: number; hits: number };
  /** Gradients in the order of GradContext.vars. */
  grads: tf.Tensor[];
}

export interface GradContext {
  head: TrainedHead;
  source: FeatureSource;
  loss: LossWeights;
  vars: tf.Variable[];
  /** The backbone is among the trained variables: the head passes gradients to its input. */
  trainsFeatures: boolean;
  /** Backbone in training mode (augmentation, batch-norm batch statistics). */
  backboneTraining: boolean;
  /** [C, m] own-class mask rows, one per class (prototype heads only). */
  identityT: tf.Tensor2D | null;
  /** [C, K] each class's prototype indices, when the orthogonality term is on. */
  groups: tf.Tensor2D | null;
  /** Each class's prototype indices, when the shallow alignment term acts (it needs the backbone to train). */
  alignGroups: { indices: Int32Array; perClass: number } | null;
  /** [C·K] each class's prototype indices, when the part localisation term is on. */
  partGroups: tf.Tensor1D | null;
}

export function gradContext(
  args: Omit<GradContext, 'identityT' | 'groups' | 'alignGroups' | 'partGroups'>,
): GradContext {
  if (args.head instanceof PooledLinearHead)
    return { ...args, identityT: null, groups: null, alignGroups: null, partGroups: null };
  const { protoClass, spec } = args.head;
  const alignGroups =
    (args.loss.shallowAlignment ?? 0) > 0 && args.trainsFeatures
      ? classGroups(protoClass, spec.numClasses, 'loss.shallowAlignment')
      : null;
  const identityT = tf.tidy(() => {
    const id = classIdentity(protoClass, spec.numClasses);
    return tf.transpose(tf.tensor2d(id.data, id.shape as [number, number])) as tf.Tensor2D;
  });
  let groups: tf.Tensor2D | null = null;
  if ((args.loss.orthogonality ?? 0) > 0) {
    const g = classGroups(protoClass, spec.numClasses, 'loss.orthogonality');
    groups = tf.tensor2d(g.indices, [spec.numClasses, g.perClass], 'int32');
  }
  const partGroups =
    (args.loss.partLocalisation ?? 0) > 0
      ? tf.tensor1d(classGroups(protoClass, spec.numClasses, 'loss.partLocalisation').indices, 'int32')
      : null;
  return { ...args, identityT, groups, alignGroups, partGroups };
}

export function disposeGradContext(ctx: GradContext): void {
  ctx.identityT?.dispose();
  ctx.groups?.dispose();
  ctx.partGroups?.dispose();
}

/**
 * Splits a batch into micro-batches of at most `micro` items. Every random draw
 * happened before (in the caller's Rng order), so the split does not change them.
 */
export function splitBatch(
  batch: {
    indices: number[];
    flipped: boolean[];
    augmentSeeds?: number[];
    dropMask?: Float32Array;
    labels: Int32Array;
    teacher?: Float32Array;
    partMask?: Uint8Array;
  },
  micro: number,
  channels: number,
): MicroBatch[] {
  const classes = batch.teacher ? batch.teacher.length / batch.indices.length : 0;
  const out: MicroBatch[] = [];
  const n = batch.indices.length;
  const maskRow = batch.partMask ? batch.partMask.length / n : 0;
  for (let c = 0; c < n; c += micro) {
    const end = Math.min(n, c + micro);
    out.push({
      indices: batch.indices.slice(c, end),
      flipped: batch.flipped.slice(c, end),
      augmentSeeds: batch.augmentSeeds?.slice(c, end),
      dropMask: batch.dropMask?.slice(c * channels, end * channels),
      labels: batch.labels.slice(c, end),
      teacher: batch.teacher?.slice(c * classes, end * classes),
      partMask: batch.partMask?.slice(c * maskRow, end * maskRow),
      weight: (end - c) / n,
    });
  }
  return out;
}

export function microBatchGrads(ctx: GradContext, mb: MicroBatch): MicroResult {
  const { head, source, loss } = ctx;
  if (head instanceof PooledLinearHead) return linearMicroBatchGrads(ctx, head, mb);
  const identityT = ctx.identityT!;
  let terms: MicroResult['terms'] = [0, 0, 0, 0];
  let alignment: number | undefined;
  let localisation: MicroResult['localisation'];
  const { value, grads } = tf.variableGrads(() => {
    const y = tf.tensor1d(mb.labels, 'int32');
    const align = ctx.alignGroups;
    let feats: tf.Tensor4D;
    let shallow: tf.Tensor4D | null = null;
    if (align) {
      const tensor = loss.shallowAlignmentTensor ?? '';
      if (!source.featuresWithInner)
        throw new Error('loss.shallowAlignment needs a backbone that runs on the images and names its inner tensors');
      [feats, shallow] = source.featuresWithInner(
        mb.indices,
        mb.flipped,
        ctx.backboneTraining,
        mb.augmentSeeds,
        tensor,
      );
    } else feats = source.features(mb.indices, mb.flipped, ctx.backboneTraining, mb.augmentSeeds);
    const localise = ctx.partGroups !== null && mb.partMask !== undefined;
    const out = head.forward(feats, {
      dropMask: mb.dropMask,
      inputGrad: ctx.trainsFeatures,
      training: true,
      keepEmbedding: align !== null || localise,
    });
    const ownMask = tf.gather(identityT, y) as tf.Tensor2D;
    const ce = crossEntropy(out.logits, y);
    const clst = clusterCost(out.minDistances, ownMask, head.maxDistance);
    const sep = separationCost(out.minDistances, ownMask, head.maxDistance);
    const parts = [tf.mul(ce, loss.crossEntropy), tf.mul(clst, loss.clusterCost), tf.mul(sep, loss.separationCost)];
    // Only when weighted, so runs without it keep their exact floats.
    const presence = loss.presenceCost ?? 0;
    if (presence > 0) parts.push(tf.mul(presenceCost(out.minDistances, ownMask), presence));
    const distill = loss.distillation ?? 0;
    if (distill > 0) {
      if (!mb.teacher) throw new Error('loss.distillation is set but the batch carries no teacher predictions');
      const teacher = tf.tensor2d(mb.teacher, out.logits.shape);
      parts.push(tf.mul(distillationLoss(out.logits, teacher, loss.distillationTemperature ?? 4), distill));
    }
    // A property of the prototypes alone: each micro-batch adds its weighted share, so a batch adds it once.
    // Free prototypes only: tied ones are real patches, and the term would bend the add-on to part them.
    if (ctx.groups && !head.isTied)
      parts.push(tf.mul(orthogonalityCost(head.prototypes as tf.Tensor2D, ctx.groups), loss.orthogonality ?? 0));
    if (align && shallow && out.embedding) {
      const cost = alignmentTerm(head, feats, shallow, out.embedding, mb.labels, align, loss);
      alignment = cost.dataSync()[0];
      parts.push(tf.mul(cost, loss.shallowAlignment ?? 0));
    }
    if (localise && out.embedding) {
      const k = (ctx.partGroups?.shape[0] ?? 0) / head.spec.numClasses;
      const rows = tf.gather(
        ctx.partGroups!,
        tf.reshape(tf.add(tf.mul(tf.expandDims(y, 1), tf.scalar(k, 'int32')), tf.range(0, k, 1, 'int32')), [-1]),
      );
      const own = tf.reshape(tf.gather(head.currentPrototypes(), rows), [mb.labels.length, k, head.prototypeDim]);
      const r = partLocalisationCost(
        out.embedding,
        own as tf.Tensor3D,
        mb.partMask!,
        loss.partLocalisationMargin ?? 0.1,
      );
      localisation = { cost: r.cost.dataSync()[0], pairs: r.pairs, hits: r.hits };
      parts.push(tf.mul(r.cost, loss.partLocalisation ?? 0));
    }
    const total = tf.addN(parts) as tf.Scalar;
    const pred = tf.argMax(out.logits, 1).dataSync();
    let correct = 0;
    pred.forEach((p, k) => (correct += p === mb.labels[k] ? 1 : 0));
    terms = [ce.dataSync()[0], clst.dataSync()[0], sep.dataSync()[0], correct];
    return tf.mul(total, mb.weight) as tf.Scalar;
  }, ctx.vars);
  const v = value.dataSync()[0];
  value.dispose();
  const out: MicroResult = { value: v, terms, grads: ctx.vars.map((variable) => grads[variable.name]) };
  if (alignment !== undefined) out.alignment = alignment;
  if (localisation !== undefined) out.localisation = localisation;
  return out;
}

/**
 * The shallow alignment term of a micro-batch: each image's own-class prototypes pick their nearest patches,
 * the shallow maps give those patches' similarity rows (constants), and the deep maps are pulled toward them.
 */
function alignmentTerm(
  head: ProtoHead,
  deep: tf.Tensor4D,
  shallow: tf.Tensor4D,
  embedding: tf.Tensor2D,
  labels: Int32Array,
  groups: { indices: Int32Array; perClass: number },
  loss: LossWeights,
): tf.Scalar {
  const [b, h, w] = deep.shape;
  const protos = head.currentPrototypes();
  const positions = nearestOwnPatches(
    embedding.dataSync() as Float32Array,
    protos.dataSync() as Float32Array,
    embedding.shape[1],
    h * w,
    labels,
    groups,
  );
  if (protos !== head.prototypes) protos.dispose();
  const rows = shallowSimilarityRows(
    shallow.dataSync() as Float32Array,
    [b, shallow.shape[1], shallow.shape[2], shallow.shape[3]],
    [h, w],
    positions,
  );
  return shallowAlignmentCost(deep, positions, rows, loss.shallowAlignmentMargin ?? 0.1);
}

/** The black-box baseline's micro-batch: cross-entropy alone (the prototype terms are reported as 0). */
function linearMicroBatchGrads(ctx: GradContext, head: PooledLinearHead, mb: MicroBatch): MicroResult {
  let terms: MicroResult['terms'] = [0, 0, 0, 0];
  const { value, grads } = tf.variableGrads(() => {
    const y = tf.tensor1d(mb.labels, 'int32');
    const feats = ctx.source.features(mb.indices, mb.flipped, ctx.backboneTraining, mb.augmentSeeds);
    const logits = head.forward(feats, { dropMask: mb.dropMask, inputGrad: ctx.trainsFeatures });
    const ce = crossEntropy(logits, y);
    const pred = tf.argMax(logits, 1).dataSync();
    let correct = 0;
    pred.forEach((p, k) => (correct += p === mb.labels[k] ? 1 : 0));
    terms = [ce.dataSync()[0], 0, 0, correct];
    return tf.mul(ce, mb.weight) as tf.Scalar;
  }, ctx.vars);
  const v = value.dataSync()[0];
  value.dispose();
  return { value: v, terms, grads: ctx.vars.map((variable) => grads[variable.name]) };
}

import * as tf from '@tensorflow/tfjs-core';
import type { TrainableBackbone } from '../backbone/types.ts';
import { classIdentity } from '../head/last-layer.ts';
import { clusterCost, crossEntropy, separationCost } from '../head/losses.ts';
import { channelDropMask, type ProtoHead } from '../head/proto-head.ts';
import { Adam, type ParamGroup } from '../optim/adam.ts';
import type { PhaseConfig, TrainConfig } from '../run/config.ts';
import { Progress } from '../run/progress.ts';
import type { Rng } from '../run/rng.ts';
import { lrFactor } from './schedule.ts';
import type { FeatureSource } from './sources.ts';

export type PrototypePhaseName = 'warmup' | 'joint' | 'pushTune';

export interface EpochStats {
  loss: number;
  crossEntropy: number;
  clusterCost: number;
  separationCost: number;
  trainAccuracy: number;
  seconds: number;
}

/** Parameter groups a phase trains: the paper freezes the backbone in warm-up and the last layer in both. */
export function phaseGroups(phase: PhaseConfig, head: ProtoHead, backbone: TrainableBackbone | null): ParamGroup[] {
  const groups: ParamGroup[] = [];
  const addOn = head.namedVariables().filter(([n]) => n.startsWith('head.addon'));
  if (phase.lr.addOn > 0 && addOn.length) groups.push({ name: 'addOn', lr: phase.lr.addOn, vars: addOn });
  // Tied prototypes are functions of the add-on, not free parameters.
  if (phase.lr.prototypes > 0 && !head.isTied) groups.push({ name: 'prototypes', lr: phase.lr.prototypes, vars: [['head.prototypes', head.prototypes]] });
  if (phase.lr.lastLayer > 0) groups.push({ name: 'lastLayer', lr: phase.lr.lastLayer, vars: [['head.last_layer', head.lastLayer]] });
  if (backbone && phase.lr.features > 0) {
    groups.push({ name: 'features', lr: phase.lr.features, vars: backbone.trainableVariables().map((v, i) => [`backbone.${i}`, v]) });
  }
  return groups;
}

export function setPhaseLearningRates(opt: Adam, phase: PhaseConfig, epoch: number): void {
  const f = lrFactor(phase, epoch);
  opt.setLearningRate('addOn', phase.lr.addOn * f);
  opt.setLearningRate('prototypes', phase.lr.prototypes * f);
  opt.setLearningRate('lastLayer', phase.lr.lastLayer * f);
  opt.setLearningRate('features', phase.lr.features * f);
}

/**
 * One epoch of stage 1 (warm-up or joint): CE + λ1·Clst + λ2·Sep with the
 * optimizer's groups. Shuffling, flips and dropout seeds all come from `rng`.
 */
export function trainPrototypeEpoch(args: {
  label: string;
  phase: PhaseConfig;
  head: ProtoHead;
  source: FeatureSource;
  loss: TrainConfig['loss'];
  optimizer: Adam;
  rng: Rng;
  quiet?: boolean;
  /** Backbone in training mode (batch-norm statistics update), as the paper's model.train(); false when features must stay fixed. */
  backboneTraining?: boolean;
}): EpochStats {
  const { phase, head, source, loss, optimizer, rng } = args;
  const start = Date.now();
  const order = rng.shuffle(Array.from({ length: source.n }, (_, i) => i));
  const identityT = tf.tidy(() => {
    const id = classIdentity(head.protoClass, head.spec.numClasses);
    return tf.transpose(tf.tensor2d(id.data, id.shape as [number, number])); // [C, m]
  });
  const progress = new Progress({ label: args.label, total: source.n, unit: 'img', quiet: args.quiet });
  let sums = { loss: 0, ce: 0, clst: 0, sep: 0, correct: 0 };
  const vars = optimizer.variables();
  const trainsFeatures = optimizer.groups.some((g) => g.name === 'features');
  for (let s = 0; s < order.length; s += phase.batchSize) {
    const batch = order.slice(s, s + phase.batchSize);
    const flipped = batch.map(() => source.canFlip && rng.next() < 0.5);
    // Drawn only when the source augments, so frozen-feature runs keep their random stream.
    const augmentSeeds = source.canAugment && (args.backboneTraining ?? true) ? batch.map(() => rng.int(2 ** 31)) : undefined;
    const dropMask = phase.inputDropout > 0 ? channelDropMask(batch.length, head.spec.inputChannels, phase.inputDropout, rng) : undefined;
    const labels = Int32Array.from(batch, (i) => source.labels[i]);
    // Micro-batches bound memory (a trainable MobileNetV2 at batch 32 exceeds wasm's heap);
    // every loss term is a batch mean, so chunk gradients weighted by chunk share sum exactly.
    const micro = Math.min(batch.length, phase.microBatch ?? batch.length);
    let parts = [0, 0, 0, 0];
    let lossValue = 0;
    let acc: tf.NamedTensorMap | null = null;
    for (let c = 0; c < batch.length; c += micro) {
      const chunk = batch.slice(c, c + micro);
      const w = chunk.length / batch.length;
      const cFlipped = flipped.slice(c, c + micro);
      const cSeeds = augmentSeeds?.slice(c, c + micro);
      const cMask = dropMask?.subarray(c * head.spec.inputChannels, (c + chunk.length) * head.spec.inputChannels);
      const cLabels = labels.subarray(c, c + chunk.length);
      let chunkParts = [0, 0, 0, 0];
      const { value, grads } = tf.variableGrads(() => {
        const y = tf.tensor1d(cLabels, 'int32');
        const feats = source.features(chunk, cFlipped, args.backboneTraining ?? true, cSeeds);
        const out = head.forward(feats, { dropMask: cMask, inputGrad: trainsFeatures, training: true });
        const ownMask = tf.gather(identityT, y) as tf.Tensor2D;
        const ce = crossEntropy(out.logits, y);
        const clst = clusterCost(out.minDistances, ownMask, head.maxDistance);
        const sep = separationCost(out.minDistances, ownMask, head.maxDistance);
        const total = tf.addN([tf.mul(ce, loss.crossEntropy), tf.mul(clst, loss.clusterCost), tf.mul(sep, loss.separationCost)]) as tf.Scalar;
        const pred = tf.argMax(out.logits, 1).dataSync();
        let correct = 0;
        pred.forEach((p, k) => (correct += p === cLabels[k] ? 1 : 0));
        chunkParts = [ce.dataSync()[0], clst.dataSync()[0], sep.dataSync()[0], correct];
        return tf.mul(total, w) as tf.Scalar;
      }, vars);
      lossValue += value.dataSync()[0];
      parts = [parts[0] + chunkParts[0] * w, parts[1] + chunkParts[1] * w, parts[2] + chunkParts[2] * w, parts[3] + chunkParts[3]];
      value.dispose();
      if (!acc) acc = grads;
      else {
        const prev: tf.NamedTensorMap = acc;
        acc = Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.add(prev[k], g)]));
        tf.dispose([...Object.values(prev), ...Object.values(grads)]);
      }
    }
    optimizer.apply(acc!);
    tf.dispose(Object.values(acc!));
    if (!Number.isFinite(lossValue)) throw new Error(`${args.label}: loss became ${lossValue}; lower the learning rates in the config`);
    const b = batch.length;
    sums = {
      loss: sums.loss + lossValue * b,
      ce: sums.ce + parts[0] * b,
      clst: sums.clst + parts[1] * b,
      sep: sums.sep + parts[2] * b,
      correct: sums.correct + parts[3],
    };
    const seen = Math.min(s + b, order.length);
    progress.tick(b, `loss ${(sums.loss / seen).toFixed(3)} acc ${((100 * sums.correct) / seen).toFixed(1)}%`);
  }
  identityT.dispose();
  const n = Math.max(1, order.length);
  progress.finish();
  return {
    loss: sums.loss / n,
    crossEntropy: sums.ce / n,
    clusterCost: sums.clst / n,
    separationCost: sums.sep / n,
    trainAccuracy: sums.correct / n,
    seconds: (Date.now() - start) / 1000,
  };
}

import * as tf from '@tensorflow/tfjs-core';
import type { TrainableBackbone } from '../backbone/types.ts';
import { channelDropMask } from '../head/proto-head.ts';
import { PooledLinearHead } from '../head/pooled-linear-head.ts';
import type { TrainedHead } from '../head/trained-head.ts';
import type { LossWeights } from '../head/losses.ts';
import type { Adam, ParamGroup } from '../optim/adam.ts';
import type { PhaseConfig } from '../config/config.ts';
import { Progress } from '../core/progress.ts';
import type { Rng } from '../core/rng.ts';
import { lrFactor } from './schedule.ts';
import type { GradPool } from './grad-pool.ts';
import { disposeGradContext, gradContext, microBatchGrads, splitBatch, type MicroBatch } from './grad-step.ts';
import type { FeatureSource } from './sources.ts';
import { partTargetMasks, type PartTargets } from './part-targets.ts';
import type { PointMap } from '../data/augment.ts';
import { teacherRows, type TeacherTargets } from './teacher.ts';

interface EpochSums {
  loss: number;
  ce: number;
  clst: number;
  sep: number;
  correct: number;
  /** The shallow alignment cost, when the term acts. */
  align?: number;
  /** The part localisation cost (pair-weighted), its pairs and hits, when the term acts. */
  loc?: { cost: number; pairs: number; hits: number };
}

/** Where an epoch stands after some batches: with the weights and optimiser state, enough to finish it exactly. */
export interface EpochProgress {
  /** Rng state before the epoch's shuffle. */
  startRngState: number;
  /** Items in the epoch (a resume on changed data is refused). */
  items: number;
  /** Position in the shuffled order where the next batch starts. */
  nextItem: number;
  /** Rng state after the last finished batch's draws. */
  rngState: number;
  sums: EpochSums;
  seconds: number;
}

export interface MidEpochCheckpoint {
  everySeconds: number;
  save(progress: EpochProgress): Promise<void>;
  /** Asked after each batch; true saves and stops the epoch (tests of resume). */
  stop?(): boolean;
}

export interface EpochStats {
  loss: number;
  crossEntropy: number;
  clusterCost: number;
  separationCost: number;
  trainAccuracy: number;
  seconds: number;
  /** Mean unweighted shallow alignment cost (loss.shallowAlignment), when the term acted. */
  shallowAlignment?: number;
  /** Mean part localisation cost and the share of (image, prototype) pairs whose best patch was on the part. */
  partLocalisation?: number;
  onPart?: number;
}

/**
 * Parameter groups a phase trains: the paper freezes the backbone in warm-up and the last layer in both.
 * The black-box baseline's linear head trains at the head's rate (`lr.addOn`), so that it and the
 * prototype model follow one schedule.
 */
export function phaseGroups(phase: PhaseConfig, head: TrainedHead, backbone: TrainableBackbone | null): ParamGroup[] {
  const groups: ParamGroup[] = [];
  if (head instanceof PooledLinearHead) {
    if (phase.lr.addOn > 0)
      groups.push({
        name: 'addOn',
        lr: phase.lr.addOn,
        vars: head.namedVariables(),
        weightDecay: phase.weightDecay.addOn,
      });
    if (backbone && phase.lr.features > 0) groups.push(featureGroup(phase, backbone));
    return groups;
  }
  const addOn = head.namedVariables().filter(([n]) => n.startsWith('head.addon'));
  if (phase.lr.addOn > 0 && addOn.length)
    groups.push({ name: 'addOn', lr: phase.lr.addOn, vars: addOn, weightDecay: phase.weightDecay.addOn });
  // Tied prototypes are functions of the add-on, not free parameters.
  if (phase.lr.prototypes > 0 && !head.isTied)
    groups.push({ name: 'prototypes', lr: phase.lr.prototypes, vars: [['head.prototypes', head.prototypes]] });
  if (phase.lr.lastLayer > 0)
    groups.push({ name: 'lastLayer', lr: phase.lr.lastLayer, vars: [['head.last_layer', head.lastLayer]] });
  if (backbone && phase.lr.features > 0) groups.push(featureGroup(phase, backbone));
  return groups;
}

function featureGroup(phase: PhaseConfig, backbone: TrainableBackbone): ParamGroup {
  return {
    name: 'features',
    lr: phase.lr.features,
    vars: backbone.trainableVariables().map((v, i) => [`backbone.${i}`, v]),
    weightDecay: phase.weightDecay.features,
  };
}

export function setPhaseLearningRates(opt: Adam, phase: PhaseConfig, epoch: number): void {
  const f = lrFactor(phase, epoch);
  opt.setLearningRate('addOn', phase.lr.addOn * f);
  opt.setLearningRate('prototypes', phase.lr.prototypes * f);
  opt.setLearningRate('lastLayer', phase.lr.lastLayer * f);
  opt.setLearningRate('features', phase.lr.features * f);
}

/** What one stage-1 epoch trains, on what, and how. */
export interface EpochArgs {
  label: string;
  phase: PhaseConfig;
  head: TrainedHead;
  source: FeatureSource;
  loss: LossWeights;
  optimizer: Adam;
  rng: Rng;
  quiet?: boolean;
  /** Backbone in training mode (batch-norm statistics update), as the paper's model.train(); false when features must stay fixed. */
  backboneTraining?: boolean;
  /** Data-parallel gradient threads (trainable backbones on single-threaded backends). */
  pool?: { pool: GradPool; backbone: TrainableBackbone | null } | null;
  /** Continue an epoch a checkpoint stopped inside. */
  resumeFrom?: EpochProgress | null;
  /** A constraint applied after every optimiser step, before the gradient threads get the new weights. */
  afterStep?: () => void;
  /** Distillation targets (with loss.distillation). */
  teacher?: TeacherTargets | null;
  /** Part localisation targets (with loss.partLocalisation): the term acts in the phases given them. */
  partTargets?: PartTargets | null;
  /** Mid-epoch checkpoints: long epochs (a fine-tune's are ~20 min) lose no more than `everySeconds` when killed. */
  checkpoint?: MidEpochCheckpoint;
}

/** One epoch to its end (no stop requests). */
export async function trainPrototypeEpoch(
  args: EpochArgs & { checkpoint?: Omit<MidEpochCheckpoint, 'stop'> },
): Promise<EpochStats> {
  return (await trainEpochSteps(args)) as EpochStats;
}

/**
 * One epoch of stage 1 (warm-up, joint, push-tune): CE + λ1·Clst + λ2·Sep with
 * the optimizer's groups. Shuffling, flips and dropout seeds all come from `rng`.
 * With a gradient pool, each batch's micro-batches are spread over its threads.
 * Returns 'stopped' when `checkpoint.stop` asked to stop (progress saved).
 */
export async function trainEpochSteps(args: EpochArgs): Promise<EpochStats | 'stopped'> {
  const { phase, head, source, loss, optimizer, rng } = args;
  const start = Date.now();
  const backboneTraining = args.backboneTraining ?? true;
  const resume = args.resumeFrom ?? null;
  // The shuffle is redrawn from the epoch's starting state, so a resumed epoch visits the same order.
  if (resume) rng.setState(resume.startRngState);
  const startRngState = rng.getState();
  const order = rng.shuffle(Array.from({ length: source.n }, (_, i) => i));
  if (resume) {
    if (resume.items !== source.n)
      throw new Error(
        `${args.label}: the checkpoint's epoch has ${resume.items} items, the data now ${source.n}; the dataset changed since the run started`,
      );
    rng.setState(resume.rngState);
  }
  const secondsBefore = resume?.seconds ?? 0;
  let lastSave = Date.now();
  const vars = optimizer.variables();
  const ctx = gradContext({
    head,
    source,
    loss,
    vars,
    trainsFeatures: optimizer.groups.some((g) => g.name === 'features'),
    backboneTraining,
  });
  const pool = args.pool?.pool ?? null;
  if (pool) {
    const names = optimizer.groups.flatMap((g) => g.vars.map(([n]) => n));
    await pool.beginPhase({ phase, loss, backboneTraining, names }, head, args.pool!.backbone);
  }
  const progress = new Progress({
    label: args.label,
    total: source.n,
    unit: 'img',
    quiet: args.quiet,
    initial: resume?.nextItem ?? 0,
  });
  let sums: EpochSums = resume ? { ...resume.sums } : { loss: 0, ce: 0, clst: 0, sep: 0, correct: 0 };
  for (let s = resume?.nextItem ?? 0; s < order.length; s += phase.batchSize) {
    const indices = order.slice(s, s + phase.batchSize);
    const flipped = indices.map(() => source.canFlip && rng.next() < 0.5);
    // Drawn only when the source augments, so runs without augmentation keep their random stream.
    const augments = source.canAugment && (backboneTraining || (source.cachedCopies ?? 0) > 0);
    const augmentSeeds = augments ? indices.map(() => rng.int(2 ** 31)) : undefined;
    const dropMask =
      phase.inputDropout > 0
        ? channelDropMask(indices.length, head.spec.inputChannels, phase.inputDropout, rng)
        : undefined;
    const labels = Int32Array.from(indices, (i) => source.labels[i]);
    // Micro-batches bound memory (a trainable MobileNetV2 at batch 32 exceeds wasm's heap) and
    // are the unit of work of the gradient threads; every loss term is a batch mean, so chunk
    // gradients weighted by chunk share sum to the whole batch's. (Not split unless configured:
    // batch-norm statistics would then come from smaller batches.)
    const micro = phase.microBatch ?? indices.length;
    const teacher = args.teacher ? teacherRows(args.teacher, indices, flipped) : undefined;
    const partMask =
      args.partTargets && !(head instanceof PooledLinearHead)
        ? partTargetMasks(
            args.partTargets,
            indices,
            flipped,
            labels,
            augmentedViews(source, args.partTargets, indices, flipped, augmentSeeds),
          )
        : undefined;
    const jobs = splitBatch(
      { indices, flipped, augmentSeeds, dropMask, labels, teacher, partMask },
      micro,
      head.spec.inputChannels,
    );
    const local = (mb: MicroBatch) => microBatchGrads(ctx, mb);
    const results = pool ? await pool.run(jobs, ctx, local) : jobs.map(local);
    // Summed in micro-batch order whichever thread computed them: the same floats as one thread.
    let acc = results[0].grads;
    for (const r of results.slice(1)) {
      const prev = acc;
      acc = prev.map((g, k) => tf.add(g, r.grads[k]));
      tf.dispose([...prev, ...r.grads]);
    }
    optimizer.apply(Object.fromEntries(vars.map((v, k) => [v.name, acc[k]])));
    tf.dispose(acc);
    args.afterStep?.();
    pool?.syncVariables(vars);
    const lossValue = results.reduce((a, r) => a + r.value, 0);
    if (!Number.isFinite(lossValue))
      throw new Error(`${args.label}: loss became ${lossValue}; lower the learning rates in the config`);
    const b = indices.length;
    const part = (t: number) => results.reduce((a, r, j) => a + r.terms[t] * jobs[j].weight, 0);
    const { align, loc } = sums;
    sums = {
      loss: sums.loss + lossValue * b,
      ce: sums.ce + part(0) * b,
      clst: sums.clst + part(1) * b,
      sep: sums.sep + part(2) * b,
      correct: sums.correct + results.reduce((a, r) => a + r.terms[3], 0),
    };
    // Only with the term on, so other runs' checkpoints and metrics keep their fields.
    if (results.some((r) => r.alignment !== undefined))
      sums.align = (align ?? 0) + results.reduce((a, r, j) => a + (r.alignment ?? 0) * jobs[j].weight, 0) * b;
    if (results.some((r) => r.localisation !== undefined))
      sums.loc = results.reduce((a, r) => {
        const l = r.localisation ?? { cost: 0, pairs: 0, hits: 0 };
        return { cost: a.cost + l.cost * l.pairs, pairs: a.pairs + l.pairs, hits: a.hits + l.hits };
      }, loc ?? { cost: 0, pairs: 0, hits: 0 });
    const seen = Math.min(s + b, order.length);
    progress.tick(b, `loss ${(sums.loss / seen).toFixed(3)} acc ${((100 * sums.correct) / seen).toFixed(1)}%`);
    const ck = args.checkpoint;
    if (ck && seen < order.length) {
      const stop = ck.stop?.() ?? false;
      if (stop || Date.now() - lastSave >= ck.everySeconds * 1000) {
        await ck.save({
          startRngState,
          items: source.n,
          nextItem: seen,
          rngState: rng.getState(),
          sums: { ...sums },
          seconds: secondsBefore + (Date.now() - start) / 1000,
        });
        lastSave = Date.now();
      }
      if (stop) {
        progress.finish();
        disposeGradContext(ctx);
        return 'stopped';
      }
    }
  }
  disposeGradContext(ctx);
  const n = Math.max(1, order.length);
  progress.finish();
  const stats: EpochStats = {
    loss: sums.loss / n,
    crossEntropy: sums.ce / n,
    clusterCost: sums.clst / n,
    separationCost: sums.sep / n,
    trainAccuracy: sums.correct / n,
    seconds: secondsBefore + (Date.now() - start) / 1000,
  };
  if (sums.align !== undefined) stats.shallowAlignment = sums.align / n;
  if (sums.loc !== undefined) {
    const pairs = Math.max(1, sums.loc.pairs);
    stats.partLocalisation = sums.loc.cost / pairs;
    stats.onPart = sums.loc.hits / pairs;
  }
  return stats;
}

/**
 * Per batch position, how its augmented view moves part points (none without augmentation). Cached
 * augmented copies cannot say where their points went: the config refuses that pairing.
 */
function augmentedViews(
  source: FeatureSource,
  t: PartTargets,
  indices: readonly number[],
  flipped: readonly boolean[],
  seeds: readonly number[] | undefined,
): (PointMap | null)[] | undefined {
  if (!seeds) return undefined;
  const view = source.augmentedView;
  if (!view) throw new Error('part localisation cannot follow the part annotations onto cached augmented copies');
  return indices.map((item, b) => view(item, seeds[b], flipped[b], t.geometry.inputSize));
}

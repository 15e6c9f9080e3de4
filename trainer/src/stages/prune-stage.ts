import * as tf from '@tensorflow/tfjs-core';
import { nearestPatches, type PatchHit, sourceImageExclusions } from './nearest-patches.ts';
import { prototypesToPrune, type PruneDecision } from './prune.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import type { TrainConfig } from '../config/config.ts';
import type { Rng } from '../core/rng.ts';
import { computeSimilarities, similarityAccuracy } from './last-layer.ts';
import { refitLastLayer, type Similarities } from './refit-last-layer.ts';
import type { PushRecord } from './push.ts';
import type { FeatureSource } from './sources.ts';

export interface PruningResult {
  mode: 'auto' | 'on' | 'off';
  k: number;
  threshold: number;
  /** Whether the pruned model was kept. */
  applied: boolean;
  candidates: PruneDecision[];
  before: { top1: number; top5: number; n: number } | null;
  after: { top1: number; top5: number; n: number } | null;
  seconds: number;
  note: string;
}

/**
 * Prune, re-optimise the last layer with pruned prototypes silenced, and keep
 * the result according to the mode. Pruned rows of the last layer are exactly 0,
 * so a pruned prototype contributes nothing; its index stays (the atlas lists it as pruned).
 */
export async function runPruneStage(args: {
  head: ProtoHead;
  train: FeatureSource;
  val: FeatureSource;
  push: PushRecord[] | null;
  config: TrainConfig;
  classes: string[];
  rng: Rng;
  quiet?: boolean;
  /** Stage 3's similarities of this head (train with the config's flips, val), when at hand: no pass over the data. */
  similarities?: { train: Similarities; val: Similarities } | null;
  /** The nearest-patch search of this head (at least k hits per prototype, source images left out), when at hand. */
  nearest?: PatchHit[][] | null;
}): Promise<PruningResult> {
  const t0 = Date.now();
  const { head, train, val, config } = args;
  const { mode, k, threshold } = config.prune;
  const done = (r: Omit<PruningResult, 'mode' | 'k' | 'threshold' | 'seconds'>): PruningResult => ({
    mode,
    k,
    threshold,
    ...r,
    seconds: (Date.now() - t0) / 1000,
  });
  if (mode === 'off')
    return done({ applied: false, candidates: [], before: null, after: null, note: 'pruning is off in the config' });
  const hits =
    args.nearest?.map((list) => list.slice(0, k)) ??
    nearestPatches(head, train, k, {
      exclude: sourceImageExclusions((args.push ?? []).map((r) => r.item)),
      quiet: args.quiet,
      label: 'prune: nearest patches',
    });
  const candidates = prototypesToPrune(hits, head.protoClass, train.labels, args.classes, { k, threshold });
  const m = head.numPrototypes;
  const valSims = args.similarities?.val ?? (await computeSimilarities(head, val, { flip: false, quiet: true }));
  const score = () => {
    const a = similarityAccuracy(head, valSims);
    return a ? { top1: a.top1, top5: a.top5, n: a.n } : null;
  };
  const before = score();
  if (!candidates.length)
    return done({ applied: false, candidates, before, after: before, note: 'no prototype met the pruning rule' });

  const original = head.lastLayer.dataSync().slice() as Float32Array;
  const pruned = new Array<boolean>(m).fill(false);
  for (const c of candidates) pruned[c.prototype] = true;
  const C = head.spec.numClasses;
  // A class whose every prototype goes has no evidence of its own left: auto never goes that far.
  const emptied = classesLeftEmpty(head.protoClass, pruned, C);
  if (mode === 'auto' && emptied > 0)
    return done({
      applied: false,
      candidates,
      before,
      after: null,
      note: `not applied: ${emptied} class(es) would lose every prototype (mode auto)`,
    });
  const sims =
    args.similarities?.train ?? (await computeSimilarities(head, train, { flip: config.data.flip, quiet: args.quiet }));
  refitLastLayer({
    head,
    train: sims,
    val: valSims,
    lastLayerConfig: {
      ...config.lastLayer,
      lr: config.prune.refitLr ?? config.lastLayer.lr,
      epochs: config.prune.refitEpochs ?? config.lastLayer.epochs,
    },
    removed: pruned,
    rng: args.rng,
  });
  const after = score();
  const worse = before && after ? after.top1 < before.top1 : false;
  if (mode === 'auto' && worse) {
    head.lastLayer.assign(tf.tensor2d(original, [m, C]));
    return done({
      applied: false,
      candidates,
      before,
      after,
      note: `not applied: validation top-1 would drop from ${pct(before!.top1)} to ${pct(after!.top1)} (mode auto)`,
    });
  }
  return done({
    applied: true,
    candidates,
    before,
    after,
    note: `pruned ${candidates.length} of ${m} prototypes; validation top-1 ${before ? pct(before.top1) : 'n/a'} -> ${after ? pct(after.top1) : 'n/a'}`,
  });
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Classes with no prototype left once `pruned` ones go. */
export function classesLeftEmpty(protoClass: Int32Array, pruned: boolean[], numClasses: number): number {
  const left = new Array<number>(numClasses).fill(0);
  protoClass.forEach((c, j) => {
    if (!pruned[j]) left[c]++;
  });
  return left.filter((n) => n === 0).length;
}

/** Pruned flags per prototype from a stage result (all false when nothing was applied). */
export function prunedFlags(result: PruningResult | null | undefined, m: number): boolean[] {
  const flags = new Array<boolean>(m).fill(false);
  if (result?.applied) for (const c of result.candidates) flags[c.prototype] = true;
  return flags;
}

/**
 * One epoch of a prototype phase (warm-up, joint, push-tune) as the epoch runner takes it:
 * the phase's learning-rate schedule, its gradient threads, the mid-epoch checkpoints,
 * then the validation score and the metrics row.
 */
import type { Adam } from '../../optim/adam.ts';
import { setPhaseLearningRates, trainEpochSteps, type EpochStats } from '../../stages/prototype-phase.ts';
import type { PartTargets } from '../../stages/part-targets.ts';
import type { Accuracy } from '../../stages/predict.ts';
import type { PhaseConfig } from '../../config/config.ts';
import type { EpochPlan } from '../epoch-runner.ts';
import type { TrainContext } from '../train-context.ts';

export interface PrototypeEpochsArgs {
  /** Name in progress bars ("push-tune 1/3"). */
  label: string;
  phase: PhaseConfig;
  optimizer: Adam;
  /** Backbone in training mode (see EpochArgs.backboneTraining). */
  backboneTraining?: boolean;
  /** Part localisation targets (push-tune with loss.partLocalisation). */
  partTargets?: PartTargets | null;
  /** Runs after each epoch's updates, before it is scored. */
  afterEpoch?: () => void;
  /** The epoch's log line. */
  logLine(epoch: number, stats: EpochStats, val: Accuracy | null): string;
}

export function prototypeEpochs(ctx: TrainContext, args: PrototypeEpochsArgs): EpochPlan {
  const { phase, optimizer } = args;
  return {
    epochs: phase.epochs,
    optimizer,
    async runEpoch(e, resumeFrom) {
      setPhaseLearningRates(optimizer, phase, e);
      const pool = await ctx.gradThreads(phase);
      const stats = await trainEpochSteps({
        label: `${args.label} ${e + 1}/${phase.epochs}`,
        phase,
        head: ctx.head,
        source: ctx.train,
        loss: ctx.config.loss,
        optimizer,
        rng: ctx.rng,
        quiet: ctx.control.quiet,
        backboneTraining: args.backboneTraining,
        pool,
        resumeFrom,
        checkpoint: ctx.midEpoch(optimizer),
        teacher: ctx.teacher,
        partTargets: args.partTargets,
        afterStep: ctx.config.head.prototypeSphere ? () => ctx.head.normalizePrototypes() : undefined,
      });
      if (stats === 'stopped') return 'stopped';
      args.afterEpoch?.();
      const v = await ctx.evalVal();
      return {
        row: { ...stats, valTop1: v?.top1 ?? null, valTop5: v?.top5 ?? null },
        seconds: stats.seconds,
        log: args.logLine(e, stats, v),
      };
    },
  };
}

/** "val 93.3%", or "val n/a" without validation data. */
export const valText = (v: Accuracy | null): string => `val ${v ? `${(100 * v.top1).toFixed(1)}%` : 'n/a'}`;

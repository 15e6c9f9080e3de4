/**
 * The one epoch loop of every epoch-based phase, the prototype model's and the fine-tuned
 * baseline's: it starts where a resumed run stopped, honours stop
 * requests, records each epoch's metrics row, and checkpoints after every epoch. The phase supplies
 * what one epoch does.
 */
import type { Adam } from '../optim/adam.ts';
import type { EpochProgress } from '../stages/prototype-phase.ts';
import type { TrainedHead } from '../head/trained-head.ts';
import type { ResumableMeta, RunState } from './run-state.ts';

/** What one epoch reports. */
export interface EpochReport {
  /** Its metrics.jsonl row, after `stage` and `epoch` (key order is the file's). */
  row: Record<string, number | null>;
  /** Training seconds to add to `meta.seconds[stage]` (phases that time themselves as a whole leave it out). */
  seconds?: number;
  /** A progress line for the log. */
  log?: string;
}

export interface EpochPlan {
  epochs: number;
  /** Saved with each checkpoint; restored first if the run resumes inside this phase. */
  optimizer: Adam;
  /**
   * Epoch `epoch` (0-based). `resumeFrom` is the progress of the epoch a checkpoint stopped inside, for the
   * first epoch after a resume; 'stopped' means a stop was requested inside the epoch (its progress saved).
   */
  runEpoch(epoch: number, resumeFrom: EpochProgress | null): Promise<EpochReport | 'stopped'>;
}

/**
 * Runs the epochs left of the phase under way (`meta.stage`, which names its metrics rows and its
 * `meta.seconds` entry); 'stopped' when a stop was requested (the run stays resumable).
 */
export async function runEpochs(
  ctx: RunState<ResumableMeta, TrainedHead>,
  plan: EpochPlan,
): Promise<'done' | 'stopped'> {
  const { meta } = ctx;
  const stage = meta.stage;
  ctx.restoreOptimizer(plan.optimizer);
  for (let e = meta.epoch; e < plan.epochs; e++) {
    if (ctx.stopRequested()) return 'stopped';
    const report = await plan.runEpoch(e, ctx.takeEpochProgress());
    if (report === 'stopped') return 'stopped';
    delete meta.epochProgress; // saved inside the epoch just finished
    meta.history.push({ stage, epoch: e + 1, ...report.row });
    if (report.log) ctx.log(report.log);
    meta.epoch = e + 1;
    if (report.seconds !== undefined) meta.seconds[stage] = (meta.seconds[stage] ?? 0) + report.seconds;
    ctx.epochsThisProcess++;
    await ctx.save(plan.optimizer);
  }
  return 'done';
}

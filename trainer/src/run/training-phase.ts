/**
 * What a training phase is: one named step of the schedule (warm-up, joint, push, ...). The
 * schedule driver (run-schedule.ts) runs phases in order and does the rest for every one of them
 * alike: resume position, the stage result row, the stage checkpoint, the summary row.
 */
import type { Accuracy } from '../stages/predict.ts';
import type { TrainContext } from './train-context.ts';

/**
 * How a phase ended: 'stopped' when a stop was requested (the run stays resumable), 'no-result' when it
 * had nothing to do (no stage result row), else the seconds its stage result reports, with the
 * validation accuracy if the phase already measured it at its end (the driver measures it otherwise).
 */
export type PhaseOutcome = { seconds: number; val?: Accuracy | null } | 'no-result' | 'stopped';

export interface TrainingPhase {
  /**
   * Its name everywhere a run records it: the checkpoint's `stage`, checkpoints/<name>.ckpt,
   * the `stage` of its metrics.jsonl rows, summary.json's `stages.<name>`. Renaming one breaks resume.
   */
  readonly name: string;
  /** Its row in the printed summary table. */
  readonly summaryLabel: string;
  /** After this phase the backbone no longer changes: the context computes its features once for what follows. */
  readonly fixesBackbone?: boolean;
  /**
   * Runs the phase, or what is left of it on resume: `ctx.meta.epoch` epochs of it are done (epoch-based
   * phases go through runEpochs, which starts there). Leaves the weights and `ctx.meta` as the phase ends.
   */
  run(ctx: TrainContext): Promise<PhaseOutcome>;
}

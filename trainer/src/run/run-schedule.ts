/**
 * Runs a training schedule from where the run stands (`meta.stage`: the next phase to run, or
 * 'done'), and does for every phase what a phase leaves to it: the stage result row, the move to
 * the next phase, the phase's checkpoint (checkpoints/<name>.ckpt), the backbone snapshot.
 */
import { copyFile } from 'node:fs/promises';
import { FINISHED } from './checkpoint.ts';
import type { TrainContext } from './train-context.ts';
import type { TrainingPhase } from './training-phase.ts';

/** Index of the phase a run continues with; the schedule's length once it is finished. */
export function resumeIndex(schedule: TrainingPhase[], stage: string, checkpoint: string): number {
  if (stage === FINISHED) return schedule.length;
  const i = schedule.findIndex((p) => p.name === stage);
  if (i < 0) {
    const names = schedule.map((p) => p.name).join(', ');
    throw new Error(
      `${checkpoint}: the run stopped before phase "${stage}", which this version's training schedule ` +
        `(${names}) does not have; finish it with the version that started it, or train anew with another --out`,
    );
  }
  return i;
}

export async function runSchedule(ctx: TrainContext, schedule: TrainingPhase[]): Promise<'done' | 'stopped'> {
  const names = new Set(schedule.map((p) => p.name));
  if (names.size !== schedule.length || names.has(FINISHED))
    throw new Error(`training schedule: phase names must be unique and not "${FINISHED}" (${[...names].join(', ')})`);
  const start = resumeIndex(schedule, ctx.meta.stage, ctx.paths.lastCheckpoint);
  for (let i = 0; i < schedule.length; i++) {
    const phase = schedule[i];
    if (i >= start) {
      const outcome = await phase.run(ctx);
      if (outcome === 'stopped') return 'stopped';
      const { meta } = ctx;
      if (outcome !== 'no-result') {
        const v = outcome.val === undefined ? await ctx.evalVal() : outcome.val;
        meta.stageResults[phase.name] = { top1: v?.top1 ?? NaN, top5: v?.top5 ?? NaN, seconds: outcome.seconds };
      }
      meta.stage = schedule[i + 1]?.name ?? FINISHED;
      meta.epoch = 0;
      await ctx.save(null);
      await copyFile(ctx.paths.lastCheckpoint, ctx.paths.stageCheckpoint(phase.name));
    }
    if (phase.fixesBackbone) await ctx.fixBackbone();
  }
  return 'done';
}

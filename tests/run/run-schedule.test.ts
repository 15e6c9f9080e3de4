import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../trainer/src/config/presets.ts';
import { resumeIndex } from '../../trainer/src/run/run-schedule.ts';
import { trainingSchedule } from '../../trainer/src/run/training-schedule.ts';

describe('the training schedule', () => {
  const schedule = trainingSchedule(resolveConfig('demo', undefined));

  it('is the paper order plus push-tune and prune, with the summary rows the run prints', () => {
    expect(schedule.map((p) => p.name)).toEqual(['warmup', 'joint', 'push', 'pushTune', 'lastLayer', 'prune']);
    expect(schedule.map((p) => p.summaryLabel)).toEqual([
      'after warm-up',
      'after joint',
      'after push',
      'after push-tune (tied)',
      'after last layer',
      'after pruning',
    ]);
    // The backbone is fixed once joint is over: push and later read a snapshot of its features.
    expect(schedule.filter((p) => p.fixesBackbone).map((p) => p.name)).toEqual(['joint']);
  });

  it('fixes the backbone after push-tune instead when push-tune trains it', () => {
    const tuned = trainingSchedule(resolveConfig('demo', { pushTune: { epochs: 2, lr: { features: 1e-5 } } }));
    expect(tuned.map((p) => p.name)).toEqual(schedule.map((p) => p.name));
    expect(tuned.filter((p) => p.fixesBackbone).map((p) => p.name)).toEqual(['pushTune']);
    // No push-tune epochs: nothing trains after joint, whatever its rates say.
    const none = trainingSchedule(resolveConfig('demo', { pushTune: { epochs: 0, lr: { features: 1e-5 } } }));
    expect(none.filter((p) => p.fixesBackbone).map((p) => p.name)).toEqual(['joint']);
  });

  it('resumes at the phase a checkpoint names, past the end once it is done, and refuses an unknown phase', () => {
    expect(resumeIndex(schedule, 'warmup', 'last.ckpt')).toBe(0);
    expect(resumeIndex(schedule, 'lastLayer', 'last.ckpt')).toBe(4);
    expect(resumeIndex(schedule, 'done', 'last.ckpt')).toBe(6);
    expect(() => resumeIndex(schedule, 'stage4', 'runs/x/checkpoints/last.ckpt')).toThrow(
      'runs/x/checkpoints/last.ckpt: the run stopped before phase "stage4", which this version\'s training ' +
        'schedule (warmup, joint, push, pushTune, lastLayer, prune) does not have; finish it with the version ' +
        'that started it, or train anew with another --out',
    );
  });
});

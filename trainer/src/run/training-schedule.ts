/**
 * The training schedule: the phases of a run, in order. This list is the only place the order lives;
 * training, checkpoints and resume, metrics.jsonl and the summary all follow it. To add a phase, write
 * it in phases/ and put it here (docs/training-schedule.md).
 */
import type { TrainConfig } from '../config/config.ts';
import { lastLayerPhase } from './phases/last-layer-phase.ts';
import { prototypePhase } from './phases/prototype-phase.ts';
import { prunePhase } from './phases/prune-phase.ts';
import { pushPhase } from './phases/push-phase.ts';
import { pushTunePhase } from './phases/push-tune-phase.ts';
import type { TrainingPhase } from './training-phase.ts';

export function trainingSchedule(config: TrainConfig): TrainingPhase[] {
  return [
    prototypePhase({ name: 'warmup', summaryLabel: 'after warm-up', phase: config.warmup }),
    // The backbone trains up to here at most; later phases read its features once.
    prototypePhase({
      name: 'joint',
      summaryLabel: 'after joint',
      phase: config.joint,
      fixesBackbone: true,
      localisesParts: config.loss.partLocalisationJoint,
    }),
    pushPhase,
    pushTunePhase,
    lastLayerPhase,
    prunePhase,
  ];
}

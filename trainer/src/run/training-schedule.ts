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
import { pushTunePhase, pushTuneTrainsBackbone } from './phases/push-tune-phase.ts';
import type { TrainingPhase } from './training-phase.ts';

export function trainingSchedule(config: TrainConfig): TrainingPhase[] {
  const tunedAfterPush = pushTuneTrainsBackbone(config);
  return [
    prototypePhase({ name: 'warmup', summaryLabel: 'after warm-up', phase: config.warmup }),
    // The backbone trains up to here (or to the end of push-tune, at pushTune.lr.features > 0);
    // later phases read its features once.
    prototypePhase({
      name: 'joint',
      summaryLabel: 'after joint',
      phase: config.joint,
      fixesBackbone: !tunedAfterPush,
      localisesParts: config.loss.partLocalisationJoint,
    }),
    pushPhase,
    pushTunePhase(tunedAfterPush),
    lastLayerPhase,
    prunePhase,
  ];
}

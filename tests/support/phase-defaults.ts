/**
 * A warm-up phase config (backbone frozen, head learning rates as in the paper) that the
 * stage tests and the step benchmarks (trainer/bench/head-step.ts, joint-step.ts) vary field by field.
 */
import type { PhaseConfig } from '../../trainer/src/config/config.ts';

export const PhaseConfigDefaults: PhaseConfig = {
  epochs: 1,
  batchSize: 64,
  lr: { features: 0, addOn: 3e-3, prototypes: 3e-3, lastLayer: 0 },
  schedule: 'constant',
  stepEpochs: 5,
  gamma: 0.1,
  inputDropout: 0,
  weightDecay: { features: 0, addOn: 0 },
};

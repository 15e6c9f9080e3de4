import type { PhaseConfig } from '../config/config.ts';

/** Learning-rate multiplier for an epoch (0-based) of a phase. */
export function lrFactor(phase: PhaseConfig, epoch: number): number {
  switch (phase.schedule) {
    case 'constant':
      return 1;
    case 'step':
      return phase.gamma ** Math.floor(epoch / phase.stepEpochs);
    case 'cosine':
      return phase.epochs <= 1 ? 1 : 0.5 * (1 + Math.cos((Math.PI * epoch) / phase.epochs));
  }
}

/** Learning-rate schedules: the exact learning rate each optimiser group gets in each epoch. */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam } from '../../trainer/src/optim/adam.ts';
import type { PhaseConfig } from '../../trainer/src/config/config.ts';
import { resolveConfig } from '../../trainer/src/config/presets.ts';
import { setPhaseLearningRates } from '../../trainer/src/stages/prototype-phase.ts';
import { lrFactor } from '../../trainer/src/stages/schedule.ts';

/** The lr per group that setPhaseLearningRates leaves on an optimiser, epoch by epoch. */
function lrsPerEpoch(phase: PhaseConfig): Record<string, number>[] {
  const v = tf.variable(tf.zeros([1]));
  const names = ['addOn', 'prototypes', 'lastLayer', 'features'];
  const opt = new Adam(names.map((name) => ({ name, lr: -1, vars: [[name, v]] as [string, tf.Variable][] })));
  const out = Array.from({ length: phase.epochs }, (_, e) => {
    setPhaseLearningRates(opt, phase, e);
    return Object.fromEntries(opt.groups.map((g) => [g.name, g.lr]));
  });
  opt.dispose();
  v.dispose();
  return out;
}

describe('learning-rate schedules', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it("step: the paper's joint stage, x0.1 every 5 epochs, every group", () => {
    const joint = resolveConfig('cub200-paper').joint;
    expect(joint).toMatchObject({ epochs: 10, schedule: 'step', stepEpochs: 5, gamma: 0.1 });
    const lrs = lrsPerEpoch({ ...joint, epochs: 15 });
    const expected = [
      ...Array(5).fill({ features: 1e-4, addOn: 3e-3, prototypes: 3e-3 }),
      ...Array(5).fill({ features: 1e-5, addOn: 3e-4, prototypes: 3e-4 }),
      ...Array(5).fill({ features: 1e-6, addOn: 3e-5, prototypes: 3e-5 }),
    ];
    lrs.forEach((lr, e) => {
      for (const [g, v] of Object.entries(expected[e] as Record<string, number>))
        expect(lr[g], `epoch ${e} ${g}`).toBeCloseTo(v, 15);
      expect(lr.lastLayer).toBe(0);
    });
  });

  it('cosine: 0.5 (1 + cos(pi e / E)), from the full lr down towards 0', () => {
    const base = resolveConfig('demo').warmup;
    const warmup = {
      ...base,
      epochs: 8,
      schedule: 'cosine' as const,
      lr: { ...base.lr, addOn: 3e-3, prototypes: 3e-3 },
    };
    // 0.5 (1 + cos(pi e / 8)) for e = 0..7, written out.
    const factors = [
      1, 0.9619397662556434, 0.8535533905932737, 0.6913417161825449, 0.5, 0.30865828381745514, 0.14644660940672627,
      0.03806023374435663,
    ];
    lrsPerEpoch(warmup).forEach((lr, e) => {
      expect(lr.addOn, `epoch ${e}`).toBeCloseTo(3e-3 * factors[e], 15);
      expect(lr.prototypes, `epoch ${e}`).toBeCloseTo(3e-3 * factors[e], 15);
      expect(lr.features).toBe(0);
    });
  });

  it('constant, and a one-epoch cosine, keep the configured lr', () => {
    const phase = resolveConfig('demo').warmup;
    expect(phase.schedule).toBe('constant');
    for (let e = 0; e < 12; e++) expect(lrFactor(phase, e)).toBe(1);
    expect(lrFactor({ ...phase, schedule: 'cosine', epochs: 1 }, 0)).toBe(1);
    expect(lrFactor({ ...phase, schedule: 'step', stepEpochs: 2, gamma: 0.5 }, 5)).toBe(0.25);
  });
});

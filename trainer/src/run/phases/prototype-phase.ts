/**
 * Warm-up and joint (paper Sec. 2.2, stage 1): CE + cluster + separation costs, each phase with its
 * own parameter groups and learning rates (warm-up leaves the backbone alone).
 */
import { Adam } from '../../optim/adam.ts';
import { phaseGroups } from '../../stages/prototype-phase.ts';
import type { PhaseConfig } from '../../config/config.ts';
import { runEpochs } from '../epoch-runner.ts';
import type { TrainingPhase } from '../training-phase.ts';
import { prototypeEpochs, valText } from './prototype-epochs.ts';

export function prototypePhase(args: {
  name: string;
  summaryLabel: string;
  phase: PhaseConfig;
  fixesBackbone?: boolean;
}): TrainingPhase {
  const { name, phase } = args;
  return {
    name,
    summaryLabel: args.summaryLabel,
    fixesBackbone: args.fixesBackbone,
    async run(ctx) {
      const optimizer = new Adam(phaseGroups(phase, ctx.head, ctx.data.trainableBackbone));
      const tStage = Date.now();
      const plan = prototypeEpochs(ctx, {
        label: name,
        phase,
        optimizer,
        logLine: (e, s, v) =>
          `${name} epoch ${e + 1}/${phase.epochs}: loss ${s.loss.toFixed(3)} (ce ${s.crossEntropy.toFixed(3)} ` +
          `clst ${s.clusterCost.toFixed(3)} sep ${s.separationCost.toFixed(3)}` +
          `${s.shallowAlignment !== undefined ? ` align ${s.shallowAlignment.toFixed(3)}` : ''}) ` +
          `train ${(100 * s.trainAccuracy).toFixed(1)}% ${valText(v)} [${s.seconds.toFixed(0)}s]`,
      });
      if ((await runEpochs(ctx, plan)) === 'stopped') return 'stopped';
      const val = await ctx.evalVal();
      optimizer.dispose();
      return { seconds: ctx.meta.seconds[name] ?? (Date.now() - tStage) / 1000, val };
    },
  };
}

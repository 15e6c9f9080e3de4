/**
 * Warm-up and joint (paper Sec. 2.2, stage 1): CE + cluster + separation costs, each phase with its
 * own parameter groups and learning rates (warm-up leaves the backbone alone), plus the part
 * localisation term in the joint stage when loss.partLocalisationJoint asks for it.
 */
import { Adam } from '../../optim/adam.ts';
import { phaseGroups } from '../../stages/prototype-phase.ts';
import type { PhaseConfig } from '../../config/config.ts';
import { runEpochs } from '../epoch-runner.ts';
import type { TrainingPhase } from '../training-phase.ts';
import { localisationText, partLocalisationTargets } from './part-localisation.ts';
import { prototypeEpochs, valText } from './prototype-epochs.ts';
import type { TrainContext } from '../train-context.ts';
import type { PartTargets } from '../../stages/part-targets.ts';

export function prototypePhase(args: {
  name: string;
  summaryLabel: string;
  phase: PhaseConfig;
  fixesBackbone?: boolean;
  /** The part localisation term acts here, each prototype's part taken from the patch it was initialised at. */
  localisesParts?: boolean;
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
        partTargets: args.localisesParts && phase.epochs > 0 ? await initPartTargets(ctx) : null,
        logLine: (e, s, v) =>
          `${name} epoch ${e + 1}/${phase.epochs}: loss ${s.loss.toFixed(3)} (ce ${s.crossEntropy.toFixed(3)} ` +
          `clst ${s.clusterCost.toFixed(3)} sep ${s.separationCost.toFixed(3)}` +
          `${s.shallowAlignment !== undefined ? ` align ${s.shallowAlignment.toFixed(3)}` : ''}) ${localisationText(s)}` +
          `train ${(100 * s.trainAccuracy).toFixed(1)}% ${valText(v)} [${s.seconds.toFixed(0)}s]`,
      });
      if ((await runEpochs(ctx, plan)) === 'stopped') return 'stopped';
      const val = await ctx.evalVal();
      optimizer.dispose();
      return { seconds: ctx.meta.seconds[name] ?? (Date.now() - tStage) / 1000, val };
    },
  };
}

async function initPartTargets(ctx: TrainContext): Promise<PartTargets> {
  const init = ctx.meta.initPatches;
  if (!init)
    throw new Error(
      'loss.partLocalisationJoint needs the patch each prototype was initialised at, which this run did not record ' +
        '(head.prototypeInit must be "patches"; a run started before it was recorded cannot take it: start a new run)',
    );
  return partLocalisationTargets(ctx, init, 'started at');
}

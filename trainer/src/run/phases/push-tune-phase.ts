/**
 * Push-tune (not in the paper): after push, train the add-on with every prototype tied to its pushed
 * patch, so accuracy lost at push comes back while prototypes stay exactly on real patches.
 */
import { Adam } from '../../optim/adam.ts';
import { phaseGroups } from '../../stages/prototype-phase.ts';
import { sourcePatchFeatures } from '../../stages/push.ts';
import { runEpochs } from '../epoch-runner.ts';
import type { TrainingPhase } from '../training-phase.ts';
import { localisationText, partLocalisationTargets } from './part-localisation.ts';
import { prototypeEpochs, valText } from './prototype-epochs.ts';

export const pushTunePhase: TrainingPhase = {
  name: 'pushTune',
  summaryLabel: 'after push-tune (tied)',
  async run(ctx) {
    const phase = ctx.config.pushTune;
    const { head, meta } = ctx;
    if (phase.epochs <= 0 || !meta.push) return 'no-result';
    head.tieToPatches(sourcePatchFeatures(meta.push, ctx.train, head.spec.inputChannels));
    // The backbone stays as pushed: tied features were read from it.
    const optimizer = new Adam(phaseGroups(phase, head, null));
    const plan = prototypeEpochs(ctx, {
      label: 'push-tune',
      phase,
      optimizer,
      backboneTraining: false,
      partTargets:
        ctx.config.loss.partLocalisation > 0 ? await partLocalisationTargets(ctx, meta.push, 'were pushed onto') : null,
      afterEpoch: () => head.syncTiedPrototypes(),
      logLine: (e, s, v) =>
        `push-tune epoch ${e + 1}/${phase.epochs}: loss ${s.loss.toFixed(3)} ${localisationText(s)}` +
        `train ${(100 * s.trainAccuracy).toFixed(1)}% ${valText(v)} [${s.seconds.toFixed(0)}s]`,
    });
    if ((await runEpochs(ctx, plan)) === 'stopped') return 'stopped';
    optimizer.dispose();
    return { seconds: meta.seconds.pushTune ?? 0 };
  },
};

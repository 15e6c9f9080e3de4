/**
 * Push-tune (not in the paper): after push, train the add-on with every prototype tied to its pushed
 * patch, so accuracy lost at push comes back while prototypes stay exactly on real patches. With
 * pushTune.lr.features > 0 a trainable backbone trains too: the source patches' features are read
 * again after every epoch, so each prototype ends on its patch as the final backbone sees it.
 */
import { hostTensor } from '../../core/host-tensors.ts';
import { Adam } from '../../optim/adam.ts';
import { phaseGroups } from '../../stages/prototype-phase.ts';
import { sourcePatchFeatures } from '../../stages/push.ts';
import { runEpochs } from '../epoch-runner.ts';
import type { TrainContext } from '../train-context.ts';
import type { TrainingPhase } from '../training-phase.ts';
import { localisationText, partLocalisationTargets } from './part-localisation.ts';
import { prototypeEpochs, valText } from './prototype-epochs.ts';

/** Phase tensor: the tied patches' features, so that a resume inside an epoch ties to what the epoch began with. */
const TIED = 'pushTune.tiedFeatures';

/** Whether push-tune trains the backbone: the schedule then fixes it after push-tune instead of after joint. */
export const pushTuneTrainsBackbone = (c: { pushTune: { epochs: number; lr: { features: number } } }): boolean =>
  c.pushTune.epochs > 0 && c.pushTune.lr.features > 0;

export function pushTunePhase(fixesBackbone: boolean): TrainingPhase {
  return {
    name: 'pushTune',
    summaryLabel: 'after push-tune (tied)',
    fixesBackbone,
    async run(ctx) {
      const phase = ctx.config.pushTune;
      const { head, meta } = ctx;
      if (phase.epochs <= 0 || !meta.push) return 'no-result';
      const backbone = phase.lr.features > 0 ? ctx.data.trainableBackbone : null;
      if (phase.lr.features > 0 && !backbone)
        ctx.log('pushTune.lr.features has no effect: the backbone is frozen (set backbone.trainable to train it)');
      const D = head.spec.inputChannels;
      const readPatches = () => sourcePatchFeatures(meta.push!, ctx.train, D, { quiet: ctx.control.quiet });
      if (backbone) {
        ctx.log(
          `push-tune trains the backbone too (features lr ${phase.lr.features}); source patches re-read each epoch`,
        );
        const tie = (features: Float32Array) => {
          head.tieToPatches(features);
          ctx.phaseTensors.set(TIED, hostTensor([meta.push!.length, D], features));
        };
        tie(ctx.resumedTensor(TIED)?.data ?? readPatches());
        return train(ctx, backbone, () => tie(readPatches()));
      }
      // The backbone stays as pushed: tied features were read from it.
      head.tieToPatches(readPatches());
      return train(ctx, null, () => head.syncTiedPrototypes());
    },
  };
}

async function train(
  ctx: TrainContext,
  backbone: TrainContext['data']['trainableBackbone'],
  afterEpoch: () => void,
): Promise<'stopped' | { seconds: number }> {
  const phase = ctx.config.pushTune;
  const { head, meta } = ctx;
  const optimizer = new Adam(phaseGroups(phase, head, backbone));
  const plan = prototypeEpochs(ctx, {
    label: 'push-tune',
    phase,
    optimizer,
    backboneTraining: backbone !== null,
    partTargets:
      ctx.config.loss.partLocalisation > 0 ? await partLocalisationTargets(ctx, meta.push!, 'were pushed onto') : null,
    afterEpoch,
    logLine: (e, s, v) =>
      `push-tune epoch ${e + 1}/${phase.epochs}: loss ${s.loss.toFixed(3)} ${localisationText(s)}` +
      `train ${(100 * s.trainAccuracy).toFixed(1)}% ${valText(v)} [${s.seconds.toFixed(0)}s]`,
  });
  if ((await runEpochs(ctx, plan)) === 'stopped') return 'stopped';
  optimizer.dispose();
  ctx.phaseTensors.delete(TIED);
  return { seconds: meta.seconds.pushTune ?? 0 };
}

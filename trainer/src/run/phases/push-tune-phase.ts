/**
 * Push-tune (not in the paper): after push, train the add-on with every prototype tied to its pushed
 * patch, so accuracy lost at push comes back while prototypes stay exactly on real patches.
 */
import { classGroups } from '../../head/last-layer.ts';
import { Adam } from '../../optim/adam.ts';
import { loadPartTargets, type PartTargets } from '../../stages/part-targets.ts';
import { phaseGroups } from '../../stages/prototype-phase.ts';
import { sourcePatchFeatures } from '../../stages/push.ts';
import { runEpochs } from '../epoch-runner.ts';
import type { TrainContext } from '../train-context.ts';
import type { TrainingPhase } from '../training-phase.ts';
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
      partTargets: await partTargets(ctx),
      afterEpoch: () => head.syncTiedPrototypes(),
      logLine: (e, s, v) =>
        `push-tune epoch ${e + 1}/${phase.epochs}: loss ${s.loss.toFixed(3)} ` +
        (s.onPart !== undefined
          ? `(part localisation ${s.partLocalisation?.toFixed(3)}, best patch on the part ${(100 * s.onPart).toFixed(1)}%) `
          : '') +
        `train ${(100 * s.trainAccuracy).toFixed(1)}% ${valText(v)} [${s.seconds.toFixed(0)}s]`,
    });
    if ((await runEpochs(ctx, plan)) === 'stopped') return 'stopped';
    optimizer.dispose();
    return { seconds: meta.seconds.pushTune ?? 0 };
  },
};

/** loss.partLocalisation: each tied prototype's part (nearest its pushed patch) and every training image's parts. */
async function partTargets(ctx: TrainContext): Promise<PartTargets | null> {
  const { loss } = ctx.config;
  const push = ctx.meta.push;
  if (!(loss.partLocalisation > 0) || !push) return null;
  const [height, width] = ctx.data.featureShape;
  const radius = loss.partLocalisationRadius;
  const t = await loadPartTargets(
    ctx.data.dataset.root,
    ctx.data.itemsBySplit.train,
    push,
    { height, width, inputSize: ctx.data.preprocess.size },
    radius,
    classGroups(ctx.head.protoClass, ctx.head.spec.numClasses, 'loss.partLocalisation'),
  );
  const targeted = t.target.reduce((a, p) => a + (p >= 0 ? 1 : 0), 0);
  ctx.log(
    `part localisation (weight ${loss.partLocalisation}, radius ${radius} px): ${targeted} of ${t.target.length} ` +
      "prototypes were pushed onto a patch near an annotated part and learn to find it on their class's images",
  );
  return t;
}

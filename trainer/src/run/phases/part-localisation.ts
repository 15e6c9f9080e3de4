/**
 * The part localisation term's targets for a phase (loss.partLocalisation): each prototype's part is the
 * visible annotated part nearest the real patch it comes from (push's patch in push-tune, the patch it was
 * initialised at in the joint stage), and every training image's visible parts.
 */
import { classGroups } from '../../head/last-layer.ts';
import { loadPartTargets, type PartTargets } from '../../stages/part-targets.ts';
import type { PushRecord } from '../../stages/push.ts';
import type { TrainContext } from '../train-context.ts';

export async function partLocalisationTargets(
  ctx: TrainContext,
  sources: readonly PushRecord[],
  from: string,
): Promise<PartTargets> {
  const { loss } = ctx.config;
  const [height, width] = ctx.data.featureShape;
  const radius = loss.partLocalisationRadius;
  const t = await loadPartTargets(
    ctx.data.dataset.root,
    ctx.data.itemsBySplit.train,
    sources,
    { height, width, inputSize: ctx.data.preprocess.size },
    radius,
    classGroups(ctx.head.protoClass, ctx.head.spec.numClasses, 'loss.partLocalisation'),
  );
  const targeted = t.target.reduce((a, p) => a + (p >= 0 ? 1 : 0), 0);
  ctx.log(
    `part localisation (weight ${loss.partLocalisation}, radius ${radius} px): ${targeted} of ${t.target.length} ` +
      `prototypes ${from} a patch near an annotated part and learn to find it on their class's images`,
  );
  return t;
}

/** The epoch log's part localisation figures, when the term acted. */
export function localisationText(s: { partLocalisation?: number; onPart?: number }): string {
  return s.onPart !== undefined
    ? `(part localisation ${s.partLocalisation?.toFixed(3)}, best patch on the part ${(100 * s.onPart).toFixed(1)}%) `
    : '';
}

/** Push (paper Sec. 2.2, stage 2): every prototype moves onto its nearest training patch of its class. */
import { loadPartCandidates } from '../../stages/part-candidates.ts';
import { pushPrototypes } from '../../stages/push.ts';
import type { CheckpointMeta } from '../checkpoint.ts';
import type { TrainContext } from '../train-context.ts';
import type { TrainingPhase } from '../training-phase.ts';

export const pushPhase: TrainingPhase = {
  name: 'push',
  summaryLabel: 'after push',
  async run(ctx) {
    const { meta } = ctx;
    const t0 = Date.now();
    if (ctx.config.push.enabled)
      meta.push = await pushPrototypes(ctx.head, ctx.train, {
        quiet: ctx.control.quiet,
        pool: await ctx.readThreads(),
        exclude: await partExclusions(ctx),
      });
    const val = await ctx.evalVal();
    meta.seconds.push = (Date.now() - t0) / 1000;
    const top1 = val ? `${(100 * val.top1).toFixed(1)}%` : 'n/a';
    ctx.log(`push: val top-1 ${top1} (mean projection distance ${meanDistance(meta.push)})`);
    return { seconds: meta.seconds.push, val };
  },
};

/** push.partRadius: the training patches too far from every annotated part; undefined when unset. */
async function partExclusions(ctx: TrainContext): Promise<Map<number, Set<number>> | undefined> {
  const radius = ctx.config.push.partRadius;
  if (radius === null) return undefined;
  const [height, width] = ctx.data.featureShape;
  const items = ctx.data.itemsBySplit.train;
  const c = await loadPartCandidates(ctx.data.dataset.root, items, {
    height,
    width,
    inputSize: ctx.data.preprocess.size,
    radius,
  });
  ctx.log(
    `push onto parts (radius ${radius} px): ${c.candidatePatches} candidate patches ` +
      `(${((100 * c.candidatePatches) / (items.length * height * width)).toFixed(1)}%) on ` +
      `${c.itemsWithCandidates} of ${items.length} training images`,
  );
  return c.exclude;
}

function meanDistance(push: CheckpointMeta['push']): string {
  if (!push?.length) return 'n/a';
  return (push.reduce((a, r) => a + Math.max(0, r.distance), 0) / push.length).toFixed(3);
}

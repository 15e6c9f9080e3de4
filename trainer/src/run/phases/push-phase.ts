/** Push (paper Sec. 2.2, stage 2): every prototype moves onto its nearest training patch of its class. */
import { pushPrototypes } from '../../stages/push.ts';
import type { CheckpointMeta } from '../checkpoint.ts';
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
      });
    const val = await ctx.evalVal();
    meta.seconds.push = (Date.now() - t0) / 1000;
    const top1 = val ? `${(100 * val.top1).toFixed(1)}%` : 'n/a';
    ctx.log(`push: val top-1 ${top1} (mean projection distance ${meanDistance(meta.push)})`);
    return { seconds: meta.seconds.push, val };
  },
};

function meanDistance(push: CheckpointMeta['push']): string {
  if (!push?.length) return 'n/a';
  return (push.reduce((a, r) => a + Math.max(0, r.distance), 0) / push.length).toFixed(3);
}

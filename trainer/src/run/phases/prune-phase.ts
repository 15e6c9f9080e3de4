/** Prune (paper Sec. 2.5): drop prototypes that are not class-specific, re-optimise the last layer. */
import { runPruneStage } from '../../stages/prune-stage.ts';
import { loadSimilarities, runSimilarityKeys, similarityCacheDir } from '../../stages/similarity-cache.ts';
import type { TrainingPhase } from '../training-phase.ts';

export const prunePhase: TrainingPhase = {
  name: 'prune',
  summaryLabel: 'after pruning',
  async run(ctx) {
    // Stage 3 stored this head's similarities (the key covers every weight but the last layer's).
    const keys = runSimilarityKeys(ctx.head, ctx.config, ctx.data);
    const dir = similarityCacheDir(ctx.config);
    const [train, val] = await Promise.all([loadSimilarities(dir, keys.train), loadSimilarities(dir, keys.val)]);
    const result = runPruneStage({
      head: ctx.head,
      train: ctx.train,
      val: ctx.val,
      push: ctx.meta.push,
      config: ctx.config,
      classes: ctx.data.dataset.classes,
      rng: ctx.rng,
      quiet: ctx.control.quiet,
      similarities: train && val ? { train, val } : null,
    });
    ctx.meta.pruning = result;
    ctx.log(
      `prune: ${result.candidates.length} candidate(s) (k=${result.k}, threshold ${result.threshold}); ${result.note}`,
    );
    ctx.meta.seconds.prune = result.seconds;
    return { seconds: result.seconds };
  },
};

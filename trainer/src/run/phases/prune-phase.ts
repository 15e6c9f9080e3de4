/** Prune (paper Sec. 2.5): drop prototypes that are not class-specific, re-optimise the last layer. */
import { cachedNearestPatches, trainNearestKey } from '../../stages/nearest-cache.ts';
import { nearestPatchesOver, sourceImageExclusions } from '../../stages/nearest-patches.ts';
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
    // Stored for the bundle, which searches the same neighbours (fewer of them) of the same head.
    const exclude = sourceImageExclusions((ctx.meta.push ?? []).map((r) => r.item));
    const nearest =
      ctx.config.prune.mode === 'off'
        ? null
        : (
            await cachedNearestPatches({
              dir,
              key: trainNearestKey(keys.embedding, ctx.config, ctx.data, exclude),
              k: ctx.config.prune.k,
              compute: async (k) =>
                nearestPatchesOver(ctx.head, ctx.train, k, {
                  pool: await ctx.readThreads(),
                  exclude,
                  quiet: ctx.control.quiet,
                  label: 'prune: nearest patches',
                }),
            })
          ).hits;
    const result = await runPruneStage({
      head: ctx.head,
      train: ctx.train,
      val: ctx.val,
      push: ctx.meta.push,
      config: ctx.config,
      classes: ctx.data.dataset.classes,
      rng: ctx.rng,
      quiet: ctx.control.quiet,
      similarities: train && val ? { train, val } : null,
      nearest,
    });
    ctx.meta.pruning = result;
    ctx.log(
      `prune: ${result.candidates.length} candidate(s) (k=${result.k}, threshold ${result.threshold}); ${result.note}`,
    );
    ctx.meta.seconds.prune = result.seconds;
    return { seconds: result.seconds };
  },
};

/**
 * The pruning stage's keep rule (trainer/src/stages/prune-stage.ts): 'auto' keeps
 * the pruned model only when validation top-1 does not drop; 'on' always keeps
 * it; 'off' does nothing. Hand-placed 2-D features make every outcome known.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { resolveConfig } from '../../trainer/src/config/presets.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { computeSimilarities } from '../../trainer/src/stages/last-layer.ts';
import { runPruneStage } from '../../trainer/src/stages/prune-stage.ts';
import type { FeatureSource } from '../../trainer/src/stages/sources.ts';
import { memorySource } from '../support/memory-source.ts';

/** One 1x1x2 feature map per item. */
function source(points: [number, number][], labels: number[]): FeatureSource {
  return memorySource(Float32Array.from(points.flat()), [1, 1, 2], Int32Array.from(labels));
}

// Training patches: class 0 around (0, 0), class 1 around (5, 5).
const TRAIN = source(
  [
    ...Array.from({ length: 8 }, (_, i): [number, number] => [0.05 * i, 0.03 * i]),
    ...Array.from({ length: 8 }, (_, i): [number, number] => [5 + 0.04 * i, 5 - 0.02 * i]),
  ],
  [...Array(8).fill(0), ...Array(8).fill(1)],
);

/**
 * Prototypes 0, 1 belong to class 0; 2, 3 to class 1. Prototype 1 sits among class-1 patches
 * (its 6 nearest training patches are all class 1: pruned with k = 6, threshold 3) but carries
 * a strong class-0 weight.
 */
function head(): ProtoHead {
  const h = new ProtoHead(
    { inputChannels: 2, addOn: [], numClasses: 2, prototypesPerClass: 2, incorrectClassWeight: -0.5 },
    new Rng(1),
  );
  h.prototypes.assign(tf.tensor2d([0, 0, 5, 5.2, 5, 5, 5, 5.1], [4, 2]));
  h.lastLayer.assign(tf.tensor2d([1, 0, 3, 0, 0, 1, 0, 1], [4, 2]));
  return h;
}
const LAST_LAYER = [1, 0, 3, 0, 0, 1, 0, 1];

/** Validation where prototype 1 is what classifies a class-0 image at (5, 6): pruning it costs that image. */
const VAL_NEEDS_PROTOTYPE_1 = source(
  [
    [5, 6],
    [5, 5],
  ],
  [0, 1],
);
/** Validation that prototype 1 does not help: pruning changes no answer. */
const VAL_WITHOUT_IT = source(
  [
    [0, 0.1],
    [5, 5],
  ],
  [0, 1],
);

/**
 * `stage3Val`: pass in the similarities stage 3 would have stored, computed from this copy of the validation data.
 * `refit`: the prune section's refit settings, with stage 3's best-epoch choice off so every refit epoch counts.
 */
const run = async (
  mode: 'auto' | 'on' | 'off',
  val: FeatureSource,
  opts: { stage3Val?: FeatureSource; refit?: { refitLr: number | null; refitEpochs: number | null } } = {},
) => {
  const h = head();
  const config = resolveConfig('demo', {
    prune: { mode, k: 6, threshold: 3, ...opts.refit },
    lastLayer: { epochs: 0, ...(opts.refit ? { selectBest: false } : {}) },
  });
  const similarities = opts.stage3Val
    ? {
        train: await computeSimilarities(h, TRAIN, { flip: config.data.flip, quiet: true }),
        val: await computeSimilarities(h, opts.stage3Val, { flip: false, quiet: true }),
      }
    : null;
  const result = await runPruneStage({
    similarities,
    head: h,
    train: TRAIN,
    val,
    push: null,
    config,
    classes: ['a', 'b'],
    rng: new Rng(2),
    quiet: true,
  });
  const weights = Array.from(h.lastLayer.dataSync());
  h.dispose();
  return { result, weights };
};

describe('pruning stage', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('finds the prototype whose nearest training patches are of another class', async () => {
    const { result } = await run('on', VAL_WITHOUT_IT);
    expect(result.candidates.map((c) => c.prototype)).toEqual([1]);
  });

  it("'auto' leaves the model untouched when validation top-1 would drop", async () => {
    const { result, weights } = await run('auto', VAL_NEEDS_PROTOTYPE_1);
    expect(result.before!.top1).toBe(1);
    expect(result.after!.top1).toBe(0.5);
    expect(result.applied).toBe(false);
    expect(result.note).toBe('not applied: validation top-1 would drop from 100.0% to 50.0% (mode auto)');
    expect(weights).toEqual(LAST_LAYER);
  });

  it("'auto' applies pruning when validation top-1 does not drop: the pruned row is exactly 0", async () => {
    const { result, weights } = await run('auto', VAL_WITHOUT_IT);
    expect(result.before!.top1).toBe(1);
    expect(result.after!.top1).toBe(1);
    expect(result.applied).toBe(true);
    expect(weights).toEqual([1, 0, 0, 0, 0, 1, 0, 1]);
  });

  it("decides the same from stage 3's similarities, without reading a validation feature", async () => {
    let reads = 0;
    const counted: FeatureSource = {
      ...VAL_NEEDS_PROTOTYPE_1,
      features: (idx, ...rest) => {
        reads++;
        return VAL_NEEDS_PROTOTYPE_1.features(idx, ...rest);
      },
    };
    const fromCache = await run('auto', counted, { stage3Val: VAL_NEEDS_PROTOTYPE_1 });
    expect(reads).toBe(0);
    expect(fromCache.result.after!.top1).toBe(0.5);
    const fresh = await run('auto', counted);
    expect(reads).toBeGreaterThan(0);
    expect({ ...fromCache.result, seconds: 0 }).toEqual({ ...fresh.result, seconds: 0 });
    expect(fromCache.weights).toEqual(fresh.weights);
  });

  it("'auto' never prunes a class's every prototype, whatever validation says", async () => {
    const h = head();
    // Both class-0 prototypes among class-1 patches: both meet the pruning rule.
    h.prototypes.assign(tf.tensor2d([5, 5.2, 5, 5.15, 5, 5, 5, 5.1], [4, 2]));
    const config = resolveConfig('demo', { prune: { mode: 'auto', k: 6, threshold: 3 }, lastLayer: { epochs: 0 } });
    const result = await runPruneStage({
      head: h,
      train: TRAIN,
      val: VAL_WITHOUT_IT,
      push: null,
      config,
      classes: ['a', 'b'],
      rng: new Rng(2),
      quiet: true,
    });
    expect(result.candidates.map((c) => c.prototype)).toEqual([0, 1]);
    expect(result.applied).toBe(false);
    expect(result.note).toBe('not applied: 1 class(es) would lose every prototype (mode auto)');
    expect(Array.from(h.lastLayer.dataSync())).toEqual(LAST_LAYER);
    h.dispose();
  });

  it("refits at prune.refitLr for prune.refitEpochs instead of stage 3's settings", async () => {
    const refit = async (r: { refitLr: number | null; refitEpochs: number | null }) =>
      (await run('on', VAL_WITHOUT_IT, { refit: r })).weights;
    // Stage 3's 0 epochs: nothing moves but the pruned row.
    expect(await refit({ refitLr: null, refitEpochs: null })).toEqual([1, 0, 0, 0, 0, 1, 0, 1]);
    const moved = await refit({ refitLr: 0.1, refitEpochs: 2 });
    expect(moved.slice(2, 4)).toEqual([0, 0]);
    expect(Math.max(...moved.map((v, i) => Math.abs(v - [1, 0, 0, 0, 0, 1, 0, 1][i])))).toBeGreaterThan(0.05);
  });

  it("'on' prunes even at a cost; 'off' does nothing", async () => {
    const on = await run('on', VAL_NEEDS_PROTOTYPE_1);
    expect(on.result.applied).toBe(true);
    expect(on.result.after!.top1).toBe(0.5);
    expect(on.weights).toEqual([1, 0, 0, 0, 0, 1, 0, 1]);
    const off = await run('off', VAL_NEEDS_PROTOTYPE_1);
    expect(off.result).toMatchObject({ applied: false, candidates: [], before: null });
    expect(off.weights).toEqual(LAST_LAYER);
  });
});

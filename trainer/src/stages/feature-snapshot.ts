/**
 * Once a trainable backbone stops training (after the joint stage), every later
 * stage (push, push-tune, last layer, pruning, evaluation) reads the same
 * eval-mode feature maps. Computing them once per image, spread over the
 * gradient threads, replaces about six backbone passes over the data with one
 * (two with mirrored copies).
 */
import * as tf from '@tensorflow/tfjs-core';
import { createFeatureStore, type FeatureStore } from '../backbone/feature-store.ts';
import { Progress } from '../core/progress.ts';
import type { TrainableBackbone } from '../backbone/types.ts';
import type { SplitName } from '../data/types.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import { spreadChunks, startGradPoolFor, type GradPool } from './grad-pool.ts';
import { cachedSource, chunkItems, type FeatureSource } from './sources.ts';

/** Images per backbone call, as the image source's own inference chunks. */
const CHUNK = 16;

/**
 * A cached source holding `source`'s eval-mode features (and its mirrored images'
 * when `flip`). `name` is the source's name in the pool's workers.
 */
export async function snapshotFeatures(
  source: FeatureSource,
  opts: { name: string; flip: boolean; pool: GradPool | null; quiet?: boolean; chunk?: number },
): Promise<FeatureSource> {
  const chunk = opts.chunk ?? CHUNK;
  const sets = opts.flip ? [false, true] : [false];
  const stores: FeatureStore[] = [];
  const progress = new Progress({
    label: `features ${opts.name}`,
    total: source.n * sets.length,
    unit: 'img',
    quiet: opts.quiet,
  });
  const threads = opts.pool?.threads ?? 1;
  for (const mirrored of sets) {
    const store = createFeatureStore({ n: source.n, shape: source.shape, encoding: 'float32' });
    const per = source.shape[0] * source.shape[1] * source.shape[2];
    const chunks = chunkItems(source.n, chunk);
    const flips = (idx: number[]) => idx.map(() => mirrored);
    await spreadChunks(
      chunks,
      threads,
      (idx) => {
        const t = tf.tidy(() => source.features(idx, flips(idx), false));
        const data = (t.dataSync() as Float32Array).slice();
        t.dispose();
        return data;
      },
      (w, idx) => opts.pool!.features(w, opts.name, idx, flips(idx)),
      (idx, data) => {
        idx.forEach((item, k) => store.set(item, data.subarray(k * per, (k + 1) * per)));
        progress.tick(idx.length);
      },
    );
    stores.push(store);
  }
  progress.finish();
  return cachedSource(stores[0], stores[1] ?? null, source.labels);
}

/**
 * Snapshots of the named splits of a trainable-backbone dataset (no mirrored
 * copies), computed over a short-lived pool of gradient threads: for analysis
 * of a finished run (the bundle), where each image's features are read several
 * times. Frozen backbones already read the on-disk cache; nothing changes then.
 */
export async function snapshotSplits(
  data: { trainableBackbone: TrainableBackbone | null; sources: Partial<Record<SplitName, FeatureSource>> },
  splits: SplitName[],
  opts: { threads: 'auto' | number; backend: string; head: ProtoHead; quiet?: boolean },
): Promise<void> {
  const backbone = data.trainableBackbone;
  if (!backbone || !data.sources.train?.shared) return;
  const { pool } = await startGradPoolFor(data, opts);
  try {
    await pool?.setBackboneWeights(backbone);
    for (const split of splits) {
      const src = data.sources[split];
      if (src?.shared && src.n)
        data.sources[split] = await snapshotFeatures(src, { name: split, flip: false, pool, quiet: opts.quiet });
    }
  } finally {
    await pool?.close();
  }
}

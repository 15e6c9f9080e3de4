import * as tf from '@tensorflow/tfjs-core';
import type { ProtoHead } from '../head/proto-head.ts';
import { Progress } from '../core/progress.ts';
import { spreadShares, type GradPool } from './grad-pool.ts';
import type { PushBest } from './search-results.ts';
import { chunkItems, type FeatureSource } from './sources.ts';

/** Where a prototype was projected: everything the explanation artefacts need. */
export interface PushRecord {
  prototype: number;
  classIndex: number;
  /** Index of the training item in the push source (-1 if the class had no images). */
  item: number;
  /** Patch position on the feature grid. */
  row: number;
  col: number;
  /** Squared latent distance before projection (how far the prototype moved). */
  distance: number;
}

export function emptyPushBest(m: number, P: number): PushBest {
  return {
    distance: new Float64Array(m).fill(Infinity),
    item: new Int32Array(m).fill(-1),
    patch: new Int32Array(m).fill(-1),
    vec: new Float32Array(m * P),
  };
}

/**
 * Pushes the items of one chunk into `best`: for each prototype of an item's class, its patches'
 * distances; a tie keeps the earlier item and patch. `exclude`: patches no prototype may take.
 */
export function pushChunk(
  head: ProtoHead,
  source: FeatureSource,
  idx: number[],
  best: PushBest,
  exclude?: Map<number, Set<number>> | null,
): void {
  const m = head.numPrototypes;
  const P = head.prototypeDim;
  const HW = source.shape[0] * source.shape[1];
  const byClass = prototypesByClass(head);
  const [zT, dT] = tf.tidy(() => {
    const feats = source.features(
      idx,
      idx.map(() => false),
      false,
    );
    const z = head.embed(feats);
    return [z, head.patchDistances(z, idx.length, HW)];
  });
  const z = zT.dataSync() as Float32Array; // [B*HW, P]
  const d = dT.dataSync() as Float32Array; // [B, HW, m]
  tf.dispose([zT, dT]);
  idx.forEach((item, k) => {
    const banned = exclude?.get(item);
    for (const j of byClass.get(source.labels[item]) ?? []) {
      for (let p = 0; p < HW; p++) {
        if (banned?.has(p)) continue;
        const v = d[(k * HW + p) * m + j];
        if (v < best.distance[j]) {
          best.distance[j] = v;
          best.item[j] = item;
          best.patch[j] = p;
          best.vec.set(z.subarray((k * HW + p) * P, (k * HW + p + 1) * P), j * P);
        }
      }
    }
  });
}

/** Prototype indices per class (class-major layout, but do not rely on it). */
export function prototypesByClass(head: ProtoHead): Map<number, number[]> {
  const byClass = new Map<number, number[]>();
  head.protoClass.forEach((c, j) => byClass.set(c, [...(byClass.get(c) ?? []), j]));
  return byClass;
}

/** Another thread's share merged into `into`: the nearer patch wins, a tie the lower item (as one thread's order). */
export function mergePushBest(into: PushBest, other: PushBest, P: number): void {
  for (let j = 0; j < into.distance.length; j++) {
    const d = other.distance[j];
    if (d < into.distance[j] || (d === into.distance[j] && other.item[j] >= 0 && other.item[j] < into.item[j])) {
      into.distance[j] = d;
      into.item[j] = other.item[j];
      into.patch[j] = other.patch[j];
      into.vec.set(other.vec.subarray(j * P, (j + 1) * P), j * P);
    }
  }
}

/**
 * Stage 2. Each prototype becomes the latent vector of the nearest patch among
 * training images of its own class (originals, not flipped copies). Returns
 * the records; the head's prototypes are overwritten. With a pool that holds
 * the source, chunk c runs on thread c mod threads; the result does not depend
 * on the thread count.
 */
export async function pushPrototypes(
  head: ProtoHead,
  source: FeatureSource,
  opts: {
    batchSize?: number;
    quiet?: boolean;
    /** Patches no prototype may be projected onto: item -> patch indices (forbidden concepts). */
    exclude?: Map<number, Set<number>>;
    pool?: GradPool | null;
  } = {},
): Promise<PushRecord[]> {
  const m = head.numPrototypes;
  const P = head.prototypeDim;
  const W = source.shape[1];
  const best = emptyPushBest(m, P);
  const progress = new Progress({ label: 'push', total: source.n, unit: 'img', quiet: opts.quiet });
  const chunks = chunkItems(source.n, opts.batchSize ?? 64);
  const pool = opts.pool ?? null;
  const name = pool?.sourceName(source) ?? null;
  const threads = pool && name ? pool.threads : 1;
  if (pool && name) await pool.setHead(head);
  const shares = await spreadShares(
    chunks,
    threads,
    (idx) => {
      pushChunk(head, source, idx, best, opts.exclude);
      progress.tick(idx.length);
    },
    (w, share) => pool!.push(w, name!, share, opts.exclude ?? null, (items) => progress.tick(items)),
  );
  for (const other of shares) mergePushBest(best, other, P);
  progress.finish();
  // A class without training images keeps its prototypes where they are.
  const current = head.prototypes.dataSync() as Float32Array;
  const next = new Float32Array(current);
  for (let j = 0; j < m; j++) if (best.item[j] >= 0) next.set(best.vec.subarray(j * P, (j + 1) * P), j * P);
  head.prototypes.assign(tf.tensor2d(next, [m, P]));
  return Array.from({ length: m }, (_, j) => ({
    prototype: j,
    classIndex: head.protoClass[j],
    item: best.item[j],
    row: best.patch[j] >= 0 ? Math.floor(best.patch[j] / W) : -1,
    col: best.patch[j] >= 0 ? best.patch[j] % W : -1,
    distance: Number.isFinite(best.distance[j]) ? best.distance[j] : -1,
  }));
}

/** Source images per backbone call when tying prototypes to their patches. */
const SOURCE_CHUNK = 16;

/**
 * Backbone features [m, D] of each prototype's source patch (for tying prototypes to patches). Each
 * source image is read once, in chunks: with a trainable backbone every read is a backbone pass.
 */
export function sourcePatchFeatures(
  records: PushRecord[],
  source: FeatureSource,
  inputChannels: number,
  opts: { quiet?: boolean } = {},
): Float32Array {
  const [H, W, D] = source.shape;
  if (D !== inputChannels) throw new Error(`feature depth ${D} does not match the head's ${inputChannels}`);
  const out = new Float32Array(records.length * D);
  const byItem = new Map<number, PushRecord[]>();
  // A class without images: its prototypes tie to a zero patch.
  for (const r of records) {
    if (r.item < 0) continue;
    const same = byItem.get(r.item);
    if (same) same.push(r);
    else byItem.set(r.item, [r]);
  }
  const items = [...byItem.keys()].sort((a, b) => a - b);
  const progress = new Progress({ label: 'source patches', total: items.length, unit: 'img', quiet: opts.quiet });
  for (const chunk of chunkItems(items.length, SOURCE_CHUNK)) {
    const idx = chunk.map((k) => items[k]);
    const t = tf.tidy(() =>
      source.features(
        idx,
        idx.map(() => false),
        false,
      ),
    );
    const maps = t.dataSync() as Float32Array;
    t.dispose();
    idx.forEach((item, k) => {
      for (const r of byItem.get(item)!) {
        const off = (k * H * W + r.row * W + r.col) * D;
        out.set(maps.subarray(off, off + D), r.prototype * D);
      }
    });
    progress.tick(idx.length);
  }
  progress.finish();
  return out;
}

import * as tf from '@tensorflow/tfjs-core';
import type { ProtoHead } from '../head/proto-head.ts';
import { Progress } from '../core/progress.ts';
import { spreadShares, type GradPool } from './grad-pool.ts';
import type { ExcludedPatch, PatchHit } from './search-results.ts';
import { chunkItems, type FeatureSource } from './sources.ts';

export type { ExcludedPatch, PatchHit } from './search-results.ts';

/**
 * Each prototype's own source image left out of its neighbours (it would always be nearest):
 * `items[j]` is prototype j's source item, -1 when it has none. Prune and the bundle both search
 * with these, and the nearest-patch cache key includes them, so both must build them here.
 */
export function sourceImageExclusions(items: readonly number[]): (ExcludedPatch | null)[] {
  return items.map((item) => (item >= 0 ? { item, patch: -1 } : null));
}

/**
 * One thread's share of the nearest-patch search: the k best images per prototype among the chunks
 * it was given (`add`), which merge with other threads' shares into the search over all items.
 */
export class NearestSearch {
  readonly hits: PatchHit[][];
  private readonly k: number;
  // The worst distance kept per prototype, so most images are rejected without allocation.
  private readonly worst: Float64Array;
  private readonly excl = new Map<number, Map<number, number>>(); // item -> prototype -> patch

  constructor(m: number, k: number, exclude?: (ExcludedPatch | null)[] | null) {
    this.k = k;
    this.hits = Array.from({ length: m }, () => []);
    this.worst = new Float64Array(m).fill(Infinity);
    exclude?.forEach((e, j) => {
      if (!e || e.item < 0) return;
      if (!this.excl.has(e.item)) this.excl.set(e.item, new Map());
      this.excl.get(e.item)!.set(j, e.patch);
    });
  }

  /** Scans the items of one chunk. */
  add(head: ProtoHead, source: FeatureSource, idx: number[]): void {
    const m = head.numPrototypes;
    const HW = source.shape[0] * source.shape[1];
    const k = this.k;
    const t = tf.tidy(() =>
      head.distanceMaps(
        source.features(
          idx,
          idx.map(() => false),
          false,
        ),
      ),
    );
    const d = t.dataSync() as Float32Array; // [B, HW, m]
    t.dispose();
    idx.forEach((item, b) => {
      const skip = this.excl.get(item);
      const base = b * HW * m;
      for (let j = 0; j < m; j++) {
        const skipPatch = skip?.get(j) ?? -2;
        if (skipPatch === -1) continue;
        let best = Infinity;
        let bestP = -1;
        for (let p = 0; p < HW; p++) {
          if (p === skipPatch) continue;
          const v = d[base + p * m + j];
          if (v < best) {
            best = v;
            bestP = p;
          }
        }
        if (bestP < 0 || !(best < this.worst[j] || this.hits[j].length < k)) continue;
        const map = new Float32Array(HW);
        for (let p = 0; p < HW; p++) map[p] = d[base + p * m + j];
        this.insert(j, { item, patch: bestP, distance: best, map });
      }
    });
  }

  /** Another thread's hits, as if its items had been scanned here (order: distance, then item). */
  merge(hits: PatchHit[][]): void {
    hits.forEach((list, j) => {
      for (const hit of list) this.insert(j, hit);
    });
  }

  private insert(j: number, hit: PatchHit): void {
    insertSorted(this.hits[j], hit, this.k);
    if (this.hits[j].length === this.k) this.worst[j] = this.hits[j][this.k - 1].distance;
  }
}

/**
 * Global analysis: for every prototype, the k images of a source whose best
 * patch is closest to it (one patch per image, as the reference code's
 * k-nearest search), nearest first. `exclude[j]` removes prototype j's own
 * source patch, or with patch -1 its whole source image (whose next-best
 * patch is usually the neighbour of the source patch: a near duplicate).
 */
export function nearestPatches(
  head: ProtoHead,
  source: FeatureSource,
  k: number,
  opts: { exclude?: (ExcludedPatch | null)[]; batchSize?: number; quiet?: boolean; label?: string } = {},
): PatchHit[][] {
  const search = new NearestSearch(head.numPrototypes, k, opts.exclude);
  const progress = new Progress({
    label: opts.label ?? 'nearest patches',
    total: source.n,
    unit: 'img',
    quiet: opts.quiet,
  });
  for (const idx of chunkItems(source.n, opts.batchSize ?? 64)) {
    search.add(head, source, idx);
    progress.tick(idx.length);
  }
  progress.finish();
  return search.hits;
}

/**
 * nearestPatches spread over the gradient threads when `pool` holds the source: chunk c runs on
 * thread c mod threads, and the shares merge into the same hits as one thread's search.
 */
export async function nearestPatchesOver(
  head: ProtoHead,
  source: FeatureSource,
  k: number,
  opts: {
    pool: GradPool | null;
    exclude?: (ExcludedPatch | null)[];
    batchSize?: number;
    quiet?: boolean;
    label?: string;
  },
): Promise<PatchHit[][]> {
  const pool = opts.pool;
  const name = pool?.sourceName(source) ?? null;
  if (!pool || !name) return nearestPatches(head, source, k, opts);
  const threads = pool.threads;
  await pool.setHead(head);
  const chunks = chunkItems(source.n, opts.batchSize ?? 64);
  const progress = new Progress({
    label: opts.label ?? 'nearest patches',
    total: source.n,
    unit: 'img',
    quiet: opts.quiet,
  });
  const search = new NearestSearch(head.numPrototypes, k, opts.exclude);
  const shares = await spreadShares(
    chunks,
    threads,
    (idx) => {
      search.add(head, source, idx);
      progress.tick(idx.length);
    },
    (w, share) => pool.nearest(w, name, share, k, opts.exclude ?? null, (items) => progress.tick(items)),
  );
  for (const hits of shares) search.merge(hits);
  progress.finish();
  return search.hits;
}

/** Keep `list` sorted by distance (ties: lower item first) and at most k long. */
function insertSorted(list: PatchHit[], hit: PatchHit, k: number): void {
  let i = list.length;
  while (
    i > 0 &&
    (list[i - 1].distance > hit.distance || (list[i - 1].distance === hit.distance && list[i - 1].item > hit.item))
  )
    i--;
  if (i >= k) return;
  list.splice(i, 0, hit);
  if (list.length > k) list.pop();
}

/** Share of each prototype's nearest patches that come from its own class. */
export function classPurity(
  hits: PatchHit[][],
  protoClass: ArrayLike<number>,
  labels: ArrayLike<number>,
  k?: number,
): number[] {
  return hits.map((list, j) => {
    const top = k === undefined ? list : list.slice(0, k);
    if (!top.length) return NaN;
    return top.filter((h) => labels[h.item] === protoClass[j]).length / top.length;
  });
}

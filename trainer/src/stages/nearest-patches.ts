import * as tf from '@tensorflow/tfjs-core';
import type { ProtoHead } from '../head/proto-head.ts';
import { Progress } from '../core/progress.ts';
import type { FeatureSource } from './sources.ts';

/** One image's closest patch to a prototype, with the prototype's whole distance map on that image. */
export interface PatchHit {
  /** Index of the item in the source. */
  item: number;
  /** Patch index on the feature grid (row * W + col). */
  patch: number;
  distance: number;
  /** Squared distances of every patch of this image to the prototype (H*W), for boxes and heatmaps. */
  map: Float32Array;
}

/** A patch not to count, e.g. the prototype's own source patch; patch -1 leaves out the whole image. */
export interface ExcludedPatch {
  item: number;
  patch: number;
}

/**
 * Each prototype's own source image left out of its neighbours (it would always be nearest):
 * `items[j]` is prototype j's source item, -1 when it has none. Prune and the bundle both search
 * with these, and the nearest-patch cache key includes them, so both must build them here.
 */
export function sourceImageExclusions(items: readonly number[]): (ExcludedPatch | null)[] {
  return items.map((item) => (item >= 0 ? { item, patch: -1 } : null));
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
  const m = head.numPrototypes;
  const [H, W] = source.shape;
  const HW = H * W;
  const hits: PatchHit[][] = Array.from({ length: m }, () => []);
  // The worst distance kept per prototype, so most images are rejected without allocation.
  const worst = new Float64Array(m).fill(Infinity);
  const excl = new Map<number, Map<number, number>>(); // item -> prototype -> patch
  opts.exclude?.forEach((e, j) => {
    if (!e || e.item < 0) return;
    if (!excl.has(e.item)) excl.set(e.item, new Map());
    excl.get(e.item)!.set(j, e.patch);
  });
  const batchSize = opts.batchSize ?? 64;
  const progress = new Progress({
    label: opts.label ?? 'nearest patches',
    total: source.n,
    unit: 'img',
    quiet: opts.quiet,
  });
  for (let s = 0; s < source.n; s += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, source.n - s) }, (_, i) => s + i);
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
      const skip = excl.get(item);
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
        if (bestP < 0 || !(best < worst[j] || hits[j].length < k)) continue;
        const map = new Float32Array(HW);
        for (let p = 0; p < HW; p++) map[p] = d[base + p * m + j];
        insertSorted(hits[j], { item, patch: bestP, distance: best, map }, k);
        if (hits[j].length === k) worst[j] = hits[j][k - 1].distance;
      }
    });
    progress.tick(idx.length);
  }
  progress.finish();
  return hits;
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

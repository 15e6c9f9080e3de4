import * as tf from '@tensorflow/tfjs-core';
import type { ProtoHead } from '../head/proto-head.ts';
import { Progress } from '../core/progress.ts';
import type { FeatureSource } from './sources.ts';

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

/**
 * Stage 2. Each prototype becomes the latent vector of the nearest patch among
 * training images of its own class (originals, not flipped copies). Returns
 * the records; the head's prototypes are overwritten.
 */
export function pushPrototypes(
  head: ProtoHead,
  source: FeatureSource,
  opts: {
    batchSize?: number;
    quiet?: boolean;
    /** Patches no prototype may be projected onto: item -> patch indices (forbidden concepts). */
    exclude?: Map<number, Set<number>>;
  } = {},
): PushRecord[] {
  const m = head.numPrototypes;
  const P = head.prototypeDim;
  const [H, W] = source.shape;
  const HW = H * W;
  const best = new Float64Array(m).fill(Infinity);
  const bestItem = new Int32Array(m).fill(-1);
  const bestPatch = new Int32Array(m).fill(-1);
  const bestVec = new Float32Array(m * P);
  // Prototype indices per class (class-major layout, but do not rely on it).
  const byClass = new Map<number, number[]>();
  head.protoClass.forEach((c, j) => byClass.set(c, [...(byClass.get(c) ?? []), j]));
  const batchSize = opts.batchSize ?? 64;
  const progress = new Progress({ label: 'push', total: source.n, unit: 'img', quiet: opts.quiet });
  for (let s = 0; s < source.n; s += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, source.n - s) }, (_, k) => s + k);
    const [zT, dT] = tf.tidy(() => {
      const feats = source.features(
        idx,
        idx.map(() => false),
        false,
      );
      const z = head.embed(feats);
      const d = head.distanceMaps(feats);
      return [z, d];
    });
    const z = zT.dataSync() as Float32Array; // [B*HW, P]
    const d = dT.dataSync() as Float32Array; // [B, HW, m]
    tf.dispose([zT, dT]);
    idx.forEach((item, k) => {
      const protos = byClass.get(source.labels[item]) ?? [];
      const banned = opts.exclude?.get(item);
      for (const j of protos) {
        for (let p = 0; p < HW; p++) {
          if (banned?.has(p)) continue;
          const v = d[(k * HW + p) * m + j];
          if (v < best[j]) {
            best[j] = v;
            bestItem[j] = item;
            bestPatch[j] = p;
            bestVec.set(z.subarray((k * HW + p) * P, (k * HW + p + 1) * P), j * P);
          }
        }
      }
    });
    progress.tick(idx.length);
  }
  progress.finish();
  // A class without training images keeps its prototypes where they are.
  const current = head.prototypes.dataSync() as Float32Array;
  const next = new Float32Array(current);
  for (let j = 0; j < m; j++) if (bestItem[j] >= 0) next.set(bestVec.subarray(j * P, (j + 1) * P), j * P);
  head.prototypes.assign(tf.tensor2d(next, [m, P]));
  return Array.from({ length: m }, (_, j) => ({
    prototype: j,
    classIndex: head.protoClass[j],
    item: bestItem[j],
    row: bestPatch[j] >= 0 ? Math.floor(bestPatch[j] / W) : -1,
    col: bestPatch[j] >= 0 ? bestPatch[j] % W : -1,
    distance: Number.isFinite(best[j]) ? best[j] : -1,
  }));
}

/** Backbone features [m, D] of each prototype's source patch (for tying prototypes to patches). */
export function sourcePatchFeatures(records: PushRecord[], source: FeatureSource, inputChannels: number): Float32Array {
  const [H, W, D] = source.shape;
  if (D !== inputChannels) throw new Error(`feature depth ${D} does not match the head's ${inputChannels}`);
  const out = new Float32Array(records.length * D);
  for (const r of records) {
    if (r.item < 0) continue; // a class without images: its prototypes tie to a zero patch
    const t = tf.tidy(() => source.features([r.item], [false], false));
    const map = t.dataSync() as Float32Array;
    t.dispose();
    const off = (r.row * W + r.col) * D;
    void H;
    out.set(map.subarray(off, off + D), r.prototype * D);
  }
  return out;
}

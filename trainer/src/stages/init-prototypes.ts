import * as tf from '@tensorflow/tfjs-core';
import type { ProtoHead } from '../head/proto-head.ts';
import { Progress } from '../core/progress.ts';
import type { Rng } from '../core/rng.ts';
import type { LinearModel } from './linear-probe.ts';
import type { FeatureSource } from './sources.ts';
import type { PushRecord } from './push.ts';

/**
 * Start each prototype at a real patch of its own class (instead of U[0,1)):
 * keep the own-class patches a linear probe finds most class-evidential (class
 * activation map), cluster them with k-means into prototypesPerClass groups and
 * take the real patch nearest each centre. Prototypes then begin on the data
 * manifold, so push later moves them little and keeps accuracy. Returns the patch
 * each prototype starts at (as push records, distance 0).
 */
export function initPrototypesFromPatches(
  head: ProtoHead,
  source: FeatureSource,
  probe: LinearModel | null,
  opts: { rng: Rng; keepFraction?: number; iterations?: number; quiet?: boolean },
): PushRecord[] {
  const [H, W, D] = source.shape;
  const HW = H * W;
  const P = head.prototypeDim;
  const C = head.spec.numClasses;
  const keepFraction = opts.keepFraction ?? 0.3;
  const z = new Float32Array(source.n * HW * P);
  const score = new Float32Array(source.n * HW);
  const progress = new Progress({ label: 'init prototypes', total: source.n, unit: 'img', quiet: opts.quiet });
  const batchSize = 64;
  for (let s = 0; s < source.n; s += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, source.n - s) }, (_, k) => s + k);
    const [zT, camT] = tf.tidy(() => {
      const feats = source.features(
        idx,
        idx.map(() => false),
        false,
      );
      const emb = head.embed(feats);
      if (!probe) return [emb, tf.zeros([idx.length * HW, C])];
      const flat = tf.reshape(feats, [idx.length * HW, D]);
      return [emb, tf.add(tf.matMul(flat, tf.tensor2d(probe.w, [D, C])), tf.tensor1d(probe.b))];
    });
    z.set(zT.dataSync(), s * HW * P);
    const cam = camT.dataSync();
    idx.forEach((item, k) => {
      const c = source.labels[item];
      for (let p = 0; p < HW; p++) score[(s + k) * HW + p] = cam[(k * HW + p) * C + c];
    });
    tf.dispose([zT, camT]);
    progress.tick(idx.length);
  }
  progress.finish();

  const perClass = head.spec.prototypesPerClass;
  const protos = head.prototypes.dataSync().slice() as Float32Array;
  // Prototypes of a class without images keep item -1, as push records them.
  const sources: PushRecord[] = Array.from(head.protoClass, (c, j) => ({
    prototype: j,
    classIndex: c,
    item: -1,
    row: 0,
    col: 0,
    distance: 0,
  }));
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < source.n; i++) byClass.set(source.labels[i], [...(byClass.get(source.labels[i]) ?? []), i]);
  for (let c = 0; c < C; c++) {
    const items = byClass.get(c) ?? [];
    if (!items.length) continue;
    let patches = items.flatMap((i) => Array.from({ length: HW }, (_, p) => i * HW + p));
    if (probe) {
      patches.sort((a, b) => score[b] - score[a]);
      patches = patches.slice(0, Math.max(perClass, Math.ceil(patches.length * keepFraction)));
    }
    const chosen = kmeansMedoids(z, P, patches, perClass, opts.rng, opts.iterations ?? 10);
    const slots = Array.from(head.protoClass.keys()).filter((j) => head.protoClass[j] === c);
    slots.forEach((j, k) => {
      const patch = chosen[k % chosen.length];
      protos.set(z.subarray(patch * P, (patch + 1) * P), j * P);
      const at = patch % HW;
      Object.assign(sources[j], { item: Math.floor(patch / HW), row: Math.floor(at / W), col: at % W });
    });
  }
  head.prototypes.assign(tf.tensor2d(protos, [head.numPrototypes, P]));
  return sources;
}

function sqDist(z: Float32Array, a: number, centre: Float32Array, c: number, P: number): number {
  let d = 0;
  for (let k = 0; k < P; k++) {
    const t = z[a * P + k] - centre[c * P + k];
    d += t * t;
  }
  return d;
}

/** k-means++ seeding + Lloyd iterations; returns, per centre, the index of the nearest real patch (distinct). */
export function kmeansMedoids(
  z: Float32Array,
  P: number,
  patches: number[],
  k: number,
  rng: Rng,
  iterations: number,
): number[] {
  const n = patches.length;
  const kk = Math.min(k, n);
  const centres = new Float32Array(kk * P);
  const setCentre = (c: number, patch: number) => centres.set(z.subarray(patch * P, (patch + 1) * P), c * P);
  setCentre(0, patches[rng.int(n)]);
  const nearest = new Float64Array(n).fill(Infinity);
  for (let c = 1; c < kk; c++) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      nearest[i] = Math.min(nearest[i], sqDist(z, patches[i], centres, c - 1, P));
      total += nearest[i];
    }
    let r = rng.next() * total;
    let pick = n - 1;
    for (let i = 0; i < n; i++) {
      r -= nearest[i];
      if (r <= 0) {
        pick = i;
        break;
      }
    }
    setCentre(c, patches[pick]);
  }
  const assign = new Int32Array(n);
  for (let it = 0; it < iterations; it++) {
    for (let i = 0; i < n; i++) {
      let best = Infinity;
      for (let c = 0; c < kk; c++) {
        const d = sqDist(z, patches[i], centres, c, P);
        if (d < best) {
          best = d;
          assign[i] = c;
        }
      }
    }
    const sums = new Float64Array(kk * P);
    const counts = new Int32Array(kk);
    for (let i = 0; i < n; i++) {
      counts[assign[i]]++;
      for (let q = 0; q < P; q++) sums[assign[i] * P + q] += z[patches[i] * P + q];
    }
    for (let c = 0; c < kk; c++)
      if (counts[c]) for (let q = 0; q < P; q++) centres[c * P + q] = sums[c * P + q] / counts[c];
  }
  const used = new Set<number>();
  const out: number[] = [];
  for (let c = 0; c < kk; c++) {
    let best = Infinity;
    let arg = -1;
    for (let i = 0; i < n; i++) {
      if (used.has(patches[i])) continue;
      const d = sqDist(z, patches[i], centres, c, P);
      if (d < best) {
        best = d;
        arg = patches[i];
      }
    }
    used.add(arg);
    out.push(arg);
  }
  return out;
}

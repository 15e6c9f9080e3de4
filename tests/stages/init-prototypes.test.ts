/**
 * Prototype initialisation from patches (k-means medoids over class-evidential
 * patches) and the linear probe that is both the baseline and the evidence
 * ranking: checked against clusters, scores and Adam steps worked out here.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { initPrototypesFromPatches, kmeansMedoids } from '../../trainer/src/stages/init-prototypes.ts';
import { linearLogits, pooledFeatures, trainLinear, type LinearModel } from '../../trainer/src/stages/linear-probe.ts';
import type { FeatureSource } from '../../trainer/src/stages/sources.ts';
import { memorySource } from '../support/memory-source.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const sq = (a: number[], b: number[]) => a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0);

describe('k-means medoids', () => {
  // Three far-apart 2-D clusters of 5 points (a deterministic jitter), patch ids shuffled.
  const centres = [
    [0, 0],
    [100, 0],
    [0, 100],
  ];
  const points: number[][] = [];
  centres.forEach(([cx, cy], c) => {
    for (let i = 0; i < 5; i++) points.push([cx + Math.sin(7 * c + i) * 0.8, cy + Math.cos(3 * c + 2 * i) * 0.8]);
  });
  const z = Float32Array.from(points.flat());
  const cluster = (p: number) => Math.floor(p / 5);
  /** Per cluster, the real point nearest the cluster's mean. */
  const medoid = (c: number) => {
    const members = [0, 1, 2, 3, 4].map((i) => c * 5 + i);
    const mean = [0, 1].map((d) => members.reduce((s, p) => s + Math.fround(points[p][d]), 0) / 5);
    return members.reduce((best, p) =>
      sq(points[p].map(Math.fround), mean) < sq(points[best].map(Math.fround), mean) ? p : best,
    );
  };

  it('returns, for each cluster, the real patch nearest its mean, whatever the seed', () => {
    const want = [0, 1, 2].map(medoid).sort((a, b) => a - b);
    for (const seed of [1, 2, 3, 4, 5]) {
      const patches = new Rng(seed).shuffle(points.map((_, i) => i));
      const got = kmeansMedoids(z, 2, patches, 3, new Rng(seed), 10);
      expect(
        [...got].sort((a, b) => a - b),
        `seed ${seed}`,
      ).toEqual(want);
    }
  });

  it('returns distinct patches, at most one per candidate, and only candidates', () => {
    const candidates = [3, 7, 12];
    const got = kmeansMedoids(z, 2, candidates, 5, new Rng(9), 10);
    expect([...got].sort((a, b) => a - b)).toEqual(candidates);
    const two = kmeansMedoids(z, 2, [0, 1, 2, 3, 4, 5, 6], 2, new Rng(9), 10);
    expect(new Set(two).size).toBe(2);
    expect(two.map(cluster).sort()).toEqual([0, 1]);
  });
});

/**
 * Two classes, 2x2 grids of 3-D features. Channel 2 marks the class-evidential patch of each image
 * (a linear probe on it scores it highest); every other patch is "background" spread around.
 */
function gridSource(): { source: FeatureSource; feats: Float32Array } {
  const n = 6;
  const feats = new Float32Array(n * 4 * 3);
  const labels = Int32Array.from([0, 0, 0, 1, 1, 1]);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < 4; p++) {
      const o = (i * 4 + p) * 3;
      const evidential = p === i % 4;
      feats.set(evidential ? [labels[i] === 0 ? 1 : -1, 0.1 * i, 4] : [0.3 * p - 0.5, 0.2 * i - 0.4, 0], o);
    }
  }
  const source = memorySource(feats, [2, 2, 3], labels);
  return { source, feats };
}

describe('prototype initialisation from patches', () => {
  it('places every prototype exactly on a real patch of its own class', () => {
    const { source, feats } = gridSource();
    const head = new ProtoHead(
      { inputChannels: 3, addOn: [], numClasses: 2, prototypesPerClass: 2, incorrectClassWeight: -0.5 },
      new Rng(1),
    );
    const sources = initPrototypesFromPatches(head, source, null, { rng: new Rng(3), quiet: true });
    const protos = head.prototypes.dataSync();
    for (let j = 0; j < 4; j++) {
      const v = Array.from(protos.subarray(j * 3, j * 3 + 3));
      // The recorded patch is the one the prototype was copied from.
      const r = sources[j];
      expect([r.prototype, r.classIndex]).toEqual([j, head.protoClass[j]]);
      expect(source.labels[r.item]).toBe(head.protoClass[j]);
      const q = r.item * 4 + r.row * 2 + r.col;
      expect(Array.from(feats.subarray(q * 3, q * 3 + 3)), `prototype ${j}'s recorded patch`).toEqual(v);
      const at = Array.from({ length: 24 }, (_, q) => q).filter(
        (q) => sq(Array.from(feats.subarray(q * 3, q * 3 + 3)), v) === 0,
      );
      expect(at.length, `prototype ${j} on a patch`).toBeGreaterThan(0);
      expect(
        at.some((q) => source.labels[Math.floor(q / 4)] === head.protoClass[j]),
        `prototype ${j} own class`,
      ).toBe(true);
    }
    // Two prototypes of a class are two different patches.
    expect(Array.from(protos.subarray(0, 3))).not.toEqual(Array.from(protos.subarray(3, 6)));
    head.dispose();
  });

  it('with a probe, keeps only the most class-evidential patches as candidates', () => {
    const { source } = gridSource();
    const head = new ProtoHead(
      { inputChannels: 3, addOn: [], numClasses: 2, prototypesPerClass: 2, incorrectClassWeight: -0.5 },
      new Rng(1),
    );
    // Class score: +-channel 0 (sign by class) plus channel 2: evidential patches score ~5, background < 1.
    const probe: LinearModel = {
      w: Float32Array.from([1, -1, 0, 0, 1, 1]),
      b: Float32Array.from([0, 0]),
      dim: 3,
      numClasses: 2,
    };
    // 12 patches per class, keep 25% = 3: the three evidential ones.
    initPrototypesFromPatches(head, source, probe, { rng: new Rng(3), keepFraction: 0.25, quiet: true });
    const protos = head.prototypes.dataSync();
    for (let j = 0; j < 4; j++) {
      const v = protos.subarray(j * 3, j * 3 + 3);
      expect(v[2], `prototype ${j} is an evidential patch`).toBe(4);
      expect(v[0]).toBe(head.protoClass[j] === 0 ? 1 : -1);
    }
    head.dispose();
  });
});

describe('linear probe (the baseline)', () => {
  it('pools features by the mean over the grid, mirrored copies after the originals', async () => {
    const { source } = gridSource();
    // A stand-in "mirror" that negates the features, so the copies are told apart.
    const sign = (flipped: boolean[]) =>
      tf.tensor4d(
        flipped.flatMap((f) => Array<number>(12).fill(f ? -1 : 1)),
        [flipped.length, 2, 2, 3],
      );
    const flipping: FeatureSource = {
      ...source,
      canFlip: true,
      features: (idx, flipped) => tf.mul(source.features(idx, flipped, false), sign(flipped)) as tf.Tensor4D,
    };
    const p = await pooledFeatures(flipping, { flip: true, quiet: true });
    expect(p.n).toBe(12);
    // Image 0: patches (1, 0, 4), (-0.2, -0.4, 0), (0.1, -0.4, 0), (0.4, -0.4, 0).
    expect(p.x[0]).toBeCloseTo((1 - 0.2 + 0.1 + 0.4) / 4, 6);
    expect(p.x[1]).toBeCloseTo((0 - 0.4 * 3) / 4, 6);
    expect(p.x[2]).toBeCloseTo(1, 6);
    expect(p.x[6 * 3 + 2]).toBeCloseTo(-1, 6); // the mirrored copy of image 0
    expect(Array.from(p.labels)).toEqual([0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]);
  });

  it('is softmax regression with L2 weight decay under Adam and a cosine lr, step for step', () => {
    // Full-batch (order-free) epochs, no dropout: the result is fixed by the maths.
    // No gradient entry is 0 at the start (Adam's first step would then hang on round-off).
    const x = [
      [1.1, 0.5],
      [0.2, -1],
      [-0.7, 0.3],
      [0.1, 0.9],
    ];
    const y = [0, 1, 2, 0];
    const [D, C, n, lr, wd, epochs] = [2, 3, 4, 0.05, 0.5, 4];
    const got = trainLinear({ x: Float32Array.from(x.flat()), labels: Int32Array.from(y), n, dim: D }, C, {
      epochs,
      lr,
      batchSize: n,
      weightDecay: wd,
      inputDropout: 0,
      rng: new Rng(1),
      quiet: true,
    });
    // Reference in float64: loss = mean CE + wd/2 |W|^2 (bias not decayed), Adam (0.9, 0.999, 1e-8).
    const W = new Array<number>(D * C).fill(0);
    const b = new Array<number>(C).fill(0);
    const m = new Array<number>(D * C + C).fill(0);
    const v = new Array<number>(D * C + C).fill(0);
    for (let e = 0; e < epochs; e++) {
      const g = new Array<number>(D * C + C).fill(0);
      for (let i = 0; i < n; i++) {
        const z = [0, 1, 2].map((c) => b[c] + x[i][0] * W[c] + x[i][1] * W[C + c]);
        const mx = Math.max(...z);
        const ez = z.map((t) => Math.exp(t - mx));
        const s = ez.reduce((a, t) => a + t, 0);
        for (let c = 0; c < C; c++) {
          const d = (ez[c] / s - (y[i] === c ? 1 : 0)) / n;
          for (let k = 0; k < D; k++) g[k * C + c] += x[i][k] * d;
          g[D * C + c] += d;
        }
      }
      for (let q = 0; q < D * C; q++) g[q] += wd * W[q];
      const step = lr * 0.5 * (1 + Math.cos((Math.PI * e) / epochs));
      for (let q = 0; q < g.length; q++) {
        m[q] = 0.9 * m[q] + 0.1 * g[q];
        v[q] = 0.999 * v[q] + 0.001 * g[q] * g[q];
        const upd = (step * (m[q] / (1 - 0.9 ** (e + 1)))) / (Math.sqrt(v[q] / (1 - 0.999 ** (e + 1))) + 1e-8);
        if (q < D * C) W[q] -= upd;
        else b[q - D * C] -= upd;
      }
    }
    Array.from(got.w).forEach((w, q) => expect(w, `w[${q}]`).toBeCloseTo(W[q], 5));
    Array.from(got.b).forEach((w, c) => expect(w, `b[${c}]`).toBeCloseTo(b[c], 5));
    // linearLogits is x W + b.
    const logits = linearLogits(got, Float32Array.from(x[1]), 1);
    [0, 1, 2].forEach((c) => expect(logits[c]).toBeCloseTo(got.b[c] + x[1][0] * got.w[c] + x[1][1] * got.w[C + c], 6));
  });

  it('separates separable classes', () => {
    const rng = new Rng(4);
    const n = 60;
    const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
    const x = Float32Array.from(
      { length: n * 4 },
      (_, q) => (q % 4 === labels[Math.floor(q / 4)] ? 2 : 0) + rng.normal() * 0.3,
    );
    const model = trainLinear({ x, labels, n, dim: 4 }, 3, {
      epochs: 30,
      lr: 0.05,
      batchSize: 16,
      weightDecay: 1e-4,
      inputDropout: 0.2,
      rng: new Rng(2),
      quiet: true,
    });
    const logits = linearLogits(model, x, n);
    let correct = 0;
    for (let i = 0; i < n; i++) {
      const row = Array.from(logits.subarray(i * 3, i * 3 + 3));
      if (row.indexOf(Math.max(...row)) === labels[i]) correct++;
    }
    expect(correct / n).toBeGreaterThanOrEqual(0.95);
  });
});

import { describe, expect, it } from 'vitest';
import {
  activationBox,
  bestPatches,
  contributions,
  explain,
  logitsFromSimilarities,
  logSimilarity,
  softmax,
  type DistanceMaps,
} from '@protoatlas/shared';

/** A seeded pseudo-random generator so the numbers are fixed. */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

function randomCase(m: number, C: number, H: number, W: number, seed: number) {
  const r = lcg(seed);
  const patchMajor = Float32Array.from({ length: H * W * m }, () => r() * 4);
  const protoMajor = new Float32Array(patchMajor.length);
  for (let p = 0; p < H * W; p++) for (let j = 0; j < m; j++) protoMajor[j * H * W + p] = patchMajor[p * m + j];
  const lastLayer = Float32Array.from({ length: m * C }, () => r() * 2 - 0.5);
  return { patchMajor, protoMajor, lastLayer };
}

describe('explain', () => {
  const m = 12;
  const C = 4;
  const H = 7;
  const W = 7;
  const { patchMajor, protoMajor, lastLayer } = randomCase(m, C, H, W, 7);
  const dP: DistanceMaps = { data: patchMajor, prototypes: m, height: H, width: W, layout: 'patch-major' };
  const dQ: DistanceMaps = { data: protoMajor, prototypes: m, height: H, width: W, layout: 'prototype-major' };
  const model = { lastLayer, numClasses: C };

  it('points contributed by all prototypes sum to the class logit (1e-5)', () => {
    const e = explain(dP, model, { width: 300, height: 200 }, { top: C, evidence: m });
    for (const p of e.predictions) {
      const sum = p.evidence.reduce((a, ev) => a + ev.contribution, 0);
      expect(Math.abs(sum - p.logit)).toBeLessThan(1e-5);
      // Ranked by contribution, highest first.
      for (let i = 1; i < p.evidence.length; i++)
        expect(p.evidence[i - 1].contribution).toBeGreaterThanOrEqual(p.evidence[i].contribution);
    }
    const probs = e.predictions.map((p) => p.probability);
    expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it('matches a direct computation of min distance, similarity and logits', () => {
    const best = bestPatches(dP);
    for (let j = 0; j < m; j++) {
      let min = Infinity;
      for (let p = 0; p < H * W; p++) min = Math.min(min, patchMajor[p * m + j]);
      expect(best.distance[j]).toBe(min);
      expect(best.similarity[j]).toBeCloseTo(Math.log((min + 1) / (min + 1e-4)), 12);
    }
    const logits = logitsFromSimilarities(best.similarity, model);
    for (let c = 0; c < C; c++) {
      let l = 0;
      for (let j = 0; j < m; j++) l += best.similarity[j] * lastLayer[j * C + c];
      expect(logits[c]).toBeCloseTo(l, 10);
    }
  });

  it('gives the same answer for both distance layouts', () => {
    const a = explain(dP, model, { width: 120, height: 90 }, { top: 3, evidence: 4 });
    const b = explain(dQ, model, { width: 120, height: 90 }, { top: 3, evidence: 4 });
    expect(b.predictions).toEqual(a.predictions);
  });

  it('never shows or counts pruned prototypes', () => {
    const pruned = Array.from({ length: m }, (_, j) => j % 3 === 0);
    const e = explain(dP, { ...model, pruned }, { width: 64, height: 64 }, { top: C, evidence: m });
    for (const p of e.predictions) {
      expect(p.evidence.some((ev) => pruned[ev.prototype])).toBe(false);
      expect(p.evidence).toHaveLength(m - 4);
      const c = contributions(e.similarities, { ...model, pruned }, p.classId);
      expect(c.reduce((s, v) => s + v, 0)).toBeCloseTo(p.logit, 10);
    }
  });

  it('ranks evidence as a full sort would: contribution descending, ties by prototype index', () => {
    // Weights of -1, 0 or 1 and equal distances make many exact ties.
    const r = lcg(11);
    const n = 40;
    const flat: DistanceMaps = {
      data: new Float32Array(n).fill(1),
      prototypes: n,
      height: 1,
      width: 1,
      layout: 'prototype-major',
    };
    const weights = Float32Array.from({ length: n * 2 }, () => Math.floor(r() * 3) - 1);
    const pruned = Array.from({ length: n }, (_, j) => j % 7 === 3);
    for (const k of [0, 1, 5, 17, n]) {
      const e = explain(
        flat,
        { lastLayer: weights, numClasses: 2, pruned },
        { width: 8, height: 8 },
        { top: 2, evidence: k },
      );
      for (const p of e.predictions) {
        const c = contributions(e.similarities, { lastLayer: weights, numClasses: 2, pruned }, p.classId);
        const sorted = Array.from(c.keys())
          .filter((j) => !pruned[j])
          .sort((a, b) => c[b] - c[a] || a - b)
          .slice(0, k);
        expect(p.evidence.map((ev) => ev.prototype)).toEqual(sorted);
      }
    }
  });

  it('boxes the patch where the prototype matches, inside the image', () => {
    const d = new Float32Array(H * W).fill(5);
    d[3 * W + 6] = 0.01; // best match at row 3, col 6 (right edge)
    const maps: DistanceMaps = { data: d, prototypes: 1, height: H, width: W, layout: 'prototype-major' };
    const box = activationBox(maps, 0, 700, 1400);
    expect(box.x + box.w).toBeLessThanOrEqual(700);
    expect(box.y + box.h).toBeLessThanOrEqual(1400);
    const cx = box.x + box.w / 2;
    const cy = box.y + box.h / 2;
    expect(cx).toBeGreaterThan(600);
    expect(cy).toBeGreaterThan(600);
    expect(cy).toBeLessThan(800);
    const e = explain(maps, { lastLayer: [2], numClasses: 1 }, { width: 700, height: 1400 }, { evidence: 1 });
    expect(e.predictions[0].evidence[0].patch).toEqual({ row: 3, col: 6 });
    expect(e.predictions[0].evidence[0].box).toEqual(box);
    expect(e.predictions[0].logit).toBeCloseTo(2 * logSimilarity(Math.fround(0.01)), 10);
  });

  it("finds boxes at a chosen resolution, in the image's own pixels", () => {
    const e = explain(dP, model, { width: 1000, height: 600 }, { top: 1, evidence: 3, boxMaxSide: 160 });
    for (const ev of e.predictions[0].evidence) {
      expect(ev.box).toEqual(activationBox(dP, ev.prototype, 1000, 600, { maxSide: 160 }));
      expect(ev.box.x + ev.box.w).toBeLessThanOrEqual(1000);
      expect(ev.box.y + ev.box.h).toBeLessThanOrEqual(600);
    }
  });

  it('rejects inconsistent shapes', () => {
    expect(() => explain({ ...dP, data: patchMajor.subarray(1) }, model, { width: 10, height: 10 })).toThrow(
      /expected 12 prototypes/,
    );
    expect(() => explain(dP, { lastLayer: lastLayer.subarray(1), numClasses: C }, { width: 10, height: 10 })).toThrow(
      /last layer/,
    );
  });

  it('softmax is stable for large logits', () => {
    const p = softmax([1000, 1000, 0]);
    expect(p[0]).toBeCloseTo(0.5, 12);
    expect(p[2]).toBe(0);
  });
});

import { describe, expect, it } from 'vitest';
import { distanceFromSimilarity, logSimilarity, normalizeRgb } from '@protoatlas/shared';

describe('logSimilarity', () => {
  it('matches hand-computed values', () => {
    expect(logSimilarity(0)).toBeCloseTo(Math.log(1 / 1e-4), 10); // 9.2103...
    expect(logSimilarity(0)).toBeCloseTo(9.210340371976184, 10);
    expect(logSimilarity(1)).toBeCloseTo(Math.log(2 / 1.0001), 12); // 0.693097...
    expect(logSimilarity(3)).toBeCloseTo(Math.log(4 / 3.0001), 12);
  });
  it('clamps negative distances (round-off) to zero', () => {
    expect(logSimilarity(-1e-6)).toBe(logSimilarity(0));
  });
  it('inverts', () => {
    for (const d of [0.01, 0.5, 2, 10]) expect(distanceFromSimilarity(logSimilarity(d))).toBeCloseTo(d, 8);
  });
});

describe('normalizeRgb', () => {
  it('applies mean and std per channel', () => {
    const out = normalizeRgb(new Uint8Array([255, 0, 51]), { mean: [0.5, 0.5, 0.2], std: [0.5, 0.25, 0.1] });
    expect(Array.from(out)).toEqual([1, -2, expect.closeTo(0, 6)]);
  });
});

import { describe, expect, it } from 'vitest';
import { correctTop1, pairedDifference } from '../../trainer/src/analysis/paired-accuracy.ts';

describe('paired accuracy difference', () => {
  it('counts the images only one classifier gets right and bounds the difference, worked by hand', () => {
    // 10 images: both right on 5, only A on 3, only B on 1, both wrong on 1.
    const a = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0].map(Boolean);
    const b = [1, 1, 1, 1, 1, 0, 0, 0, 1, 0].map(Boolean);
    const d = pairedDifference(a, b);
    expect(d).toMatchObject({ n: 10, onlyA: 3, onlyB: 1 });
    expect(d.difference).toBeCloseTo(0.2, 12);
    // Differences: three +1, one -1, six 0; mean 0.2, sample variance (4 - 10 * 0.04) / 9 = 0.4.
    const half = 1.96 * Math.sqrt(0.4 / 10);
    expect(d.interval95[0]).toBeCloseTo(0.2 - half, 12);
    expect(d.interval95[1]).toBeCloseTo(0.2 + half, 12);
  });

  it('gives a zero-width interval when the two agree on every image, and refuses unpaired scores', () => {
    const same = [true, false, true];
    expect(pairedDifference(same, same)).toEqual({ n: 3, difference: 0, interval95: [0, 0], onlyA: 0, onlyB: 0 });
    expect(() => pairedDifference([true, false], [true])).toThrow(/same images: 2 against 1/);
  });

  it('scores top-1 from logits', () => {
    const logits = Float32Array.from([0.1, 0.9, 0.7, 0.3, 0.2, 0.2]);
    // Ties go to the first class.
    expect(correctTop1(logits, Int32Array.from([1, 1, 0]), 2)).toEqual([true, false, true]);
  });
});

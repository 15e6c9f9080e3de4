import { describe, expect, it } from 'vitest';
import {
  boxCoverage,
  boxIoU,
  cellBox,
  composeReceptiveField,
  percentile,
  percentileBox,
  receptiveFieldBox,
  upsampleBicubic,
} from '@protoatlas/shared';

describe('percentile', () => {
  it('interpolates like numpy', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBeCloseTo(2.5, 12);
    expect(percentile([0, 10], 95)).toBeCloseTo(9.5, 12);
    expect(percentile([5], 95)).toBe(5);
  });
});

describe('percentileBox', () => {
  it('is the smallest box holding the top 5% of a hand-made map', () => {
    // 20x10 map (200 px): a hot 3x2 block at (x 12..14, y 4..5) plus one hot pixel at (3, 8): 7 px > everything else,
    // and 3 more pixels at value 5 so that exactly the top 10 (5%) are >= the 95th percentile.
    const w = 20;
    const h = 10;
    const map = new Float32Array(w * h);
    for (let y = 4; y <= 5; y++) for (let x = 12; x <= 14; x++) map[y * w + x] = 10;
    map[8 * w + 3] = 9;
    map[0 * w + 13] = 5; // the 95th percentile pulls these in too
    map[1 * w + 13] = 5;
    map[2 * w + 13] = 5;
    const p95 = percentile(map, 95);
    expect(p95).toBeGreaterThan(0);
    const box = percentileBox(map, w, h, 95);
    // Everything >= p95 must be inside, and the box is tight.
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        if (map[y * w + x] >= p95) {
          expect(x >= box.x && x < box.x + box.w && y >= box.y && y < box.y + box.h).toBe(true);
        }
    expect(box).toEqual({ x: 3, y: 0, w: 12, h: 9 });
    // With only the block above the threshold the box is exactly the block.
    expect(percentileBox(map, w, h, 97)).toEqual({ x: 12, y: 4, w: 3, h: 2 });
  });

  it('rejects a map of the wrong size', () => {
    expect(() => percentileBox(new Float32Array(5), 2, 2)).toThrow(/expected 2x2/);
  });
});

describe('upsampleBicubic', () => {
  it('keeps constants constant and is the identity at scale 1', () => {
    const c = upsampleBicubic(new Float32Array(49).fill(3.5), 7, 7, 50, 33);
    expect(c.every((v) => Math.abs(v - 3.5) < 1e-6)).toBe(true);
    const m = Float32Array.from({ length: 12 }, (_, i) => i * i);
    expect(Array.from(upsampleBicubic(m, 3, 4, 3, 4))).toEqual(Array.from(m));
  });

  it('peaks where the low-resolution map peaks', () => {
    const m = new Float32Array(49);
    m[2 * 7 + 5] = 1; // row 2, col 5
    const up = upsampleBicubic(m, 7, 7, 224, 224);
    let best = 0;
    up.forEach((v, i) => (v > up[best] ? (best = i) : 0));
    const [y, x] = [Math.floor(best / 224), best % 224];
    expect(x).toBeGreaterThanOrEqual(5 * 32);
    expect(x).toBeLessThan(6 * 32);
    expect(y).toBeGreaterThanOrEqual(2 * 32);
    expect(y).toBeLessThan(3 * 32);
  });
});

describe('boxes', () => {
  it('maps grid cells and receptive fields to image pixels', () => {
    expect(cellBox(0, 0, 7, 7, 700, 350)).toEqual({ x: 0, y: 0, w: 100, h: 50 });
    expect(cellBox(6, 6, 7, 7, 700, 350)).toEqual({ x: 600, y: 300, w: 100, h: 50 });
    // Two 3x3 stride-2 convs with padding 1: size 7, stride 4.
    const rf = composeReceptiveField([
      { kernel: 3, stride: 2, padding: 1 },
      { kernel: 3, stride: 2, padding: 1 },
    ]);
    expect(rf).toEqual({ size: 7, stride: 4, start: 0.5 });
    expect(receptiveFieldBox(rf, 1, 1, 16, 16, 16)).toEqual({ x: 1, y: 1, w: 7, h: 7 });
    expect(receptiveFieldBox(rf, 0, 0, 16, 32, 32)).toEqual({ x: 0, y: 0, w: 8, h: 8 });
  });

  it('computes IoU and coverage', () => {
    expect(boxIoU({ x: 0, y: 0, w: 2, h: 2 }, { x: 1, y: 1, w: 2, h: 2 })).toBeCloseTo(1 / 7, 12);
    expect(boxCoverage({ x: 0, y: 0, w: 10, h: 10 }, { x: 5, y: 5, w: 10, h: 10 })).toBeCloseTo(0.25, 12);
  });
});

describe('percentile by selection', () => {
  it('agrees with sorting on random, constant and sorted arrays', () => {
    let s = 3;
    const r = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const sorted = (xs: number[], p: number) => {
      const a = [...xs].sort((x, y) => x - y);
      const pos = (p / 100) * (a.length - 1);
      const lo = Math.floor(pos);
      const hi = Math.min(a.length - 1, lo + 1);
      return a[lo] + (a[hi] - a[lo]) * (pos - lo);
    };
    for (const n of [1, 2, 3, 10, 101, 1000]) {
      const cases = [
        Array.from({ length: n }, r),
        Array.from({ length: n }, () => 7),
        Array.from({ length: n }, (_, i) => i),
        Array.from({ length: n }, (_, i) => n - i),
        Array.from({ length: n }, () => Math.floor(r() * 3)),
      ];
      for (const xs of cases)
        for (const p of [0, 5, 50, 95, 99.9, 100]) expect(percentile(xs, p)).toBeCloseTo(sorted(xs, p), 12);
    }
  });
});

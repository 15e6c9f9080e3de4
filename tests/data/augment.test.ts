import { describe, expect, it } from 'vitest';
import {
  augmentedInput,
  augmentedPointMap,
  augmentImage,
  invertTransform,
  homography,
  randomTransform,
  warp,
  PAPER_AUGMENT,
} from '../../trainer/src/data/augment.ts';
import { toNHWC } from '../../trainer/src/data/decode.ts';
import type { RgbImage } from '../../trainer/src/data/types.ts';
import { Rng } from '../../trainer/src/core/rng.ts';

/** A 32x32 image: red left half, blue right half, a green 4x4 square at (4..7, 4..7). */
function testImage(n = 32): RgbImage {
  const data = new Uint8Array(n * n * 3);
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++) {
      const o = (y * n + x) * 3;
      if (x >= 4 && x < 8 && y >= 4 && y < 8) data.set([0, 255, 0], o);
      else data.set(x < n / 2 ? [255, 0, 0] : [0, 0, 255], o);
    }
  return { width: n, height: n, data };
}

const px = (img: RgbImage, x: number, y: number) =>
  Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe('online augmentation', () => {
  it('solves the homography through four point pairs', () => {
    const src: [number, number][] = [
      [0, 0],
      [10, 0],
      [10, 10],
      [0, 10],
    ];
    const dst: [number, number][] = [
      [1, 2],
      [9, 0],
      [11, 12],
      [0, 9],
    ];
    const h = homography(src, dst);
    src.forEach(([x, y], i) => {
      const z = h[6] * x + h[7] * y + h[8];
      expect((h[0] * x + h[1] * y + h[2]) / z).toBeCloseTo(dst[i][0], 9);
      expect((h[3] * x + h[4] * y + h[5]) / z).toBeCloseTo(dst[i][1], 9);
    });
  });

  it('is the identity with nothing enabled, and a mirror with only the flip', () => {
    const img = testImage();
    const none = { rotation: 0, shear: 0, skew: 0, cropScale: 1, probability: 1 };
    expect(Array.from(augmentImage(img, none, new Rng(1)).data)).toEqual(Array.from(img.data));
    const flipped = augmentImage(img, none, new Rng(1), true);
    expect(px(flipped, 31 - 5, 5)).toEqual([0, 255, 0]);
    expect(px(flipped, 2, 20)).toEqual([0, 0, 255]);
  });

  it('rotates about the centre: a 90-degree output->input map turns left into top', () => {
    const img = testImage();
    const c = 16;
    // Output (x, y) samples input at the point rotated by +90 degrees about the centre.
    const m: Parameters<typeof warp>[1] = [0, -1, 2 * c, 1, 0, 0, 0, 0, 1];
    const out = warp(img, m);
    // Output (x, y) reads input (2c - y, x): the blue right half comes out on top, red below,
    // and the green square at input (4..7, 4..7) lands at output x 4..7, y 25..28.
    expect(px(out, 16, 3)).toEqual([0, 0, 255]);
    expect(px(out, 16, 28)).toEqual([255, 0, 0]);
    expect(px(out, 5, 26)).toEqual([0, 255, 0]);
  });

  it('is deterministic per seed, varies across seeds, keeps size and stays mostly recognisable', () => {
    const img = testImage(64);
    const spec = { ...PAPER_AUGMENT, probability: 1 };
    const a = augmentImage(img, spec, new Rng(7));
    const b = augmentImage(img, spec, new Rng(7));
    const c = augmentImage(img, spec, new Rng(8));
    expect(a.width).toBe(64);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(Array.from(a.data)).not.toEqual(Array.from(c.data));
    // The centre stays inside the image content under the paper's magnitudes.
    for (let s = 0; s < 20; s++) {
      const t = randomTransform(64, spec, new Rng(s));
      const z = t[6] * 32 + t[7] * 32 + t[8];
      const [x, y] = [(t[0] * 32 + t[1] * 32 + t[2]) / z, (t[3] * 32 + t[4] * 32 + t[5]) / z];
      expect(Math.hypot(x - 32, y - 32)).toBeLessThan(16);
    }
  });

  // Each transform alone (probability 1), read back from the output->input matrix over many seeds.
  const NONE = { rotation: 0, shear: 0, skew: 0, cropScale: 1, probability: 1 };
  const only = (t: Partial<typeof PAPER_AUGMENT>) => ({ ...NONE, ...t });
  const deg = (rad: number) => (rad * 180) / Math.PI;
  const SEEDS = Array.from({ length: 300 }, (_, s) => s);

  it('samples rotations uniformly within +-rotation degrees, about the centre', () => {
    const angles = SEEDS.map((s) => {
      const t = randomTransform(64, only({ rotation: 15 }), new Rng(s));
      expect(t[0]).toBeCloseTo(t[4], 12); // a pure rotation
      expect(t[1]).toBeCloseTo(-t[3], 12);
      // The centre is fixed.
      expect(t[0] * 32 + t[1] * 32 + t[2]).toBeCloseTo(32, 9);
      return deg(Math.atan2(t[3], t[0]));
    });
    expect(Math.max(...angles.map(Math.abs))).toBeLessThanOrEqual(15 + 1e-9);
    expect(Math.max(...angles)).toBeGreaterThan(14);
    expect(Math.min(...angles)).toBeLessThan(-14);
    expect(angles.filter((a) => Math.abs(a) < 7.5).length / angles.length).toBeCloseTo(0.5, 1);
  });

  it('samples shears within +-shear degrees, along x or y', () => {
    const along = { x: 0, y: 0 };
    const angles = SEEDS.map((s) => {
      const t = randomTransform(64, only({ shear: 10 }), new Rng(s));
      expect([t[0], t[4], t[8]]).toEqual([1, 1, 1]);
      expect(t[1] === 0 || t[3] === 0).toBe(true);
      if (t[1] !== 0) along.x++;
      else along.y++;
      return deg(Math.atan(t[1] + t[3]));
    });
    expect(Math.max(...angles.map(Math.abs))).toBeLessThanOrEqual(10 + 1e-9);
    expect(Math.max(...angles.map(Math.abs))).toBeGreaterThan(9.3);
    expect(Math.min(along.x, along.y)).toBeGreaterThan(100);
  });

  it('crops a square window of cropScale..1 of the side, always inside the image', () => {
    const sides = SEEDS.map((s) => {
      const t = randomTransform(64, only({ cropScale: 0.8 }), new Rng(s));
      expect(t[0]).toBe(t[4]);
      expect([t[1], t[3], t[6], t[7]]).toEqual([0, 0, 0, 0]);
      // The output's corners read input points inside [0, 64].
      const [x0, y0, x1, y1] = [t[2], t[5], t[0] * 64 + t[2], t[4] * 64 + t[5]];
      for (const v of [x0, y0, x1, y1]) {
        expect(v).toBeGreaterThanOrEqual(-1e-9);
        expect(v).toBeLessThanOrEqual(64 + 1e-9);
      }
      return t[0];
    });
    expect(Math.min(...sides)).toBeGreaterThanOrEqual(0.8);
    expect(Math.min(...sides)).toBeLessThan(0.81);
    expect(Math.max(...sides)).toBeLessThanOrEqual(1);
    expect(Math.max(...sides)).toBeGreaterThan(0.99);
  });

  it('skews by tilting one side inwards by up to skew x side', () => {
    const moves = SEEDS.map((s) => {
      const t = randomTransform(64, only({ skew: 0.2 }), new Rng(s));
      const at = (x: number, y: number) => {
        const z = t[6] * x + t[7] * y + t[8];
        return [(t[0] * x + t[1] * y + t[2]) / z, (t[3] * x + t[4] * y + t[5]) / z];
      };
      // Output -> input: exactly two image corners map off themselves, by the same distance.
      const shifts = [
        [0, 0],
        [64, 0],
        [64, 64],
        [0, 64],
      ].map(([x, y]) => {
        const [u, v] = at(x, y);
        return Math.hypot(u - x, v - y);
      });
      const moved = shifts.filter((d) => d > 1e-6);
      expect(moved.length === 0 || moved.length === 2).toBe(true);
      if (moved.length === 2) expect(moved[0]).toBeCloseTo(moved[1], 6);
      return Math.max(...shifts);
    });
    // A tilted corner reads the input up to skew x side = 12.8 px away.
    expect(Math.max(...moves)).toBeLessThanOrEqual(0.2 * 64 + 1e-6);
    expect(Math.max(...moves)).toBeGreaterThan(12);
  });

  it('applies each transform with the configured probability', () => {
    const spec = { ...PAPER_AUGMENT, shear: 0, skew: 0, cropScale: 1 }; // rotation alone, p = 0.5
    const rotated = SEEDS.filter((s) => randomTransform(64, spec, new Rng(s))[1] !== 0).length / SEEDS.length;
    expect(rotated).toBeGreaterThan(0.4);
    expect(rotated).toBeLessThan(0.6);
    const never = SEEDS.slice(0, 50).map((s) => randomTransform(64, { ...PAPER_AUGMENT, probability: 0 }, new Rng(s)));
    for (const t of never) expect(t).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  });

  it('refuses non-square images', () => {
    expect(() => augmentImage({ width: 2, height: 3, data: new Uint8Array(18) }, PAPER_AUGMENT, new Rng(0))).toThrow(
      /square/,
    );
  });
});

describe('input noise on augmented copies', () => {
  const pre = {
    size: 32,
    mean: [0.485, 0.456, 0.406] as [number, number, number],
    std: [0.229, 0.224, 0.225] as [number, number, number],
  };
  const still = { ...PAPER_AUGMENT, probability: 0 };

  it('without noise is the normalised image itself when no transform applies', () => {
    const img = testImage();
    expect(Array.from(augmentedInput(img, still, new Rng(5), false, pre))).toEqual(
      Array.from(toNHWC([img], pre, false)),
    );
  });

  it('adds seeded N(0, std) noise clipped at 1.25 std to every normalised value', () => {
    const img = testImage();
    const clean = toNHWC([img], pre, false);
    const a = augmentedInput(img, { ...still, noise: 0.2 }, new Rng(5), false, pre);
    const b = augmentedInput(img, { ...still, noise: 0.2 }, new Rng(5), false, pre);
    const c = augmentedInput(img, { ...still, noise: 0.2 }, new Rng(6), false, pre);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    const d = Array.from(a, (x, i) => x - clean[i]);
    expect(Math.max(...d.map(Math.abs))).toBeLessThanOrEqual(0.25 + 1e-6);
    // P(|N(0, 0.2)| > 0.25) = 21%: about that share of the 3,072 values sits on the clip.
    const clipped = d.filter((x) => Math.abs(x) > 0.25 - 1e-6).length / d.length;
    expect(clipped).toBeGreaterThan(0.17);
    expect(clipped).toBeLessThan(0.25);
    const mean = d.reduce((s, x) => s + x, 0) / d.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
  });
});

describe('part points through an augmented view', () => {
  /** A black n×n image with a white 3×3 square over pixels [x, x+3) × [y, y+3). */
  const marked = (n: number, x: number, y: number): RgbImage => {
    const data = new Uint8Array(n * n * 3);
    for (let r = y; r < y + 3; r++)
      for (let c = x; c < x + 3; c++) data.fill(255, (r * n + c) * 3, (r * n + c) * 3 + 3);
    return { width: n, height: n, data };
  };
  /** Brightness-weighted centre of an image (continuous pixels), or null when it is black. */
  const centroid = (img: RgbImage): [number, number] | null => {
    let [sx, sy, sw] = [0, 0, 0];
    for (let r = 0; r < img.height; r++)
      for (let c = 0; c < img.width; c++) {
        const v = img.data[(r * img.width + c) * 3];
        [sx, sy, sw] = [sx + v * (c + 0.5), sy + v * (r + 0.5), sw + v];
      }
    return sw > 0 ? [sx / sw, sy / sw] : null;
  };
  const always = { ...PAPER_AUGMENT, probability: 1 };

  it('inverts a homography', () => {
    const m = randomTransform(64, always, new Rng(5));
    const back = invertTransform(m);
    const p = [10, 20, 1];
    const q = [0, 1, 2].map((i) => m[i * 3] * p[0] + m[i * 3 + 1] * p[1] + m[i * 3 + 2]);
    const r = [0, 1, 2].map((i) => back[i * 3] * q[0] + back[i * 3 + 1] * q[1] + back[i * 3 + 2] * q[2]);
    expect(r[0] / r[2]).toBeCloseTo(10, 9);
    expect(r[1] / r[2]).toBeCloseTo(20, 9);
  });

  it('lands where the warped image shows the point, mirrored or not, at any input size', () => {
    const img = marked(64, 30, 20); // centre (31.5, 21.5)
    let compared = 0;
    for (let seed = 1; seed <= 12; seed++)
      for (const flip of [false, true]) {
        const seen = centroid(augmentImage(img, always, new Rng(seed), flip));
        // On a 32-px model input the same point is at half the coordinates.
        const at = augmentedPointMap(64, always, seed, 32, flip)(15.75, 10.75);
        if (!at || !seen) continue;
        expect(at[0] * 2, `seed ${seed} flip ${flip}: x`).toBeCloseTo(seen[0], 0);
        expect(at[1] * 2, `seed ${seed} flip ${flip}: y`).toBeCloseTo(seen[1], 0);
        compared++;
      }
    expect(compared).toBeGreaterThan(16);
    // Without a transform only the mirror moves it.
    const none = { ...PAPER_AUGMENT, probability: 0 };
    expect(augmentedPointMap(64, none, 3, 32, false)(15.75, 10.75)).toEqual([15.75, 10.75]);
    expect(augmentedPointMap(64, none, 3, 32, true)(15.75, 10.75)).toEqual([32 - 15.75, 10.75]);
  });

  it('is null exactly when the crop leaves the point out', () => {
    // Crops only (edges clamp under rotation, which would smear a corner mark into view).
    const crop = { rotation: 0, shear: 0, skew: 0, cropScale: 0.6, probability: 1 };
    const img = marked(64, 12, 12);
    const [outside, inside] = [[] as number[], [] as number[]];
    for (let seed = 1; seed <= 30; seed++) {
      // The window's far edges lie beyond the mark, so its near corner in view puts all of it in view, and a
      // point a pixel past its far corner (bilinear sampling reaches that far) out of view puts all of it out.
      const map = augmentedPointMap(64, crop, seed, 64, false);
      const seen = centroid(augmentImage(img, crop, new Rng(seed), false));
      if (map(16, 16) === null) {
        outside.push(seed);
        expect(seen, `seed ${seed}: cropped out, not shown`).toBeNull();
      } else if (map(12, 12) !== null) {
        inside.push(seed);
        expect(seen, `seed ${seed}: shown`).not.toBeNull();
      }
    }
    expect(outside.length).toBeGreaterThan(2);
    expect(inside.length).toBeGreaterThan(0);
  });
});

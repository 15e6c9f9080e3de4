/**
 * The shallow alignment term (Huang et al.'s SDFA) against values worked out by hand and a plain-loop
 * reference, and its gradient against finite differences.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  nearestOwnPatches,
  shallowAlignmentCost,
  shallowSimilarityRows,
} from '../../trainer/src/head/shallow-alignment.ts';
import { Rng } from '../../trainer/src/core/rng.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('nearest own-class patches', () => {
  it('pick, for each prototype of the image’s class, the patch nearest it', () => {
    // Two images of 3 patches in 1 dimension; classes 0 and 1 with prototypes [0, 1] and [2, 3].
    const z = Float32Array.from([0, 5, 9, /* image 1 */ 4, 1, 8]);
    const prototypes = Float32Array.from([4.6, 8.9, -1, 100]);
    const groups = { indices: Int32Array.from([0, 1, 2, 3]), perClass: 2 };
    const got = nearestOwnPatches(z, prototypes, 1, 3, Int32Array.from([0, 1]), groups);
    // Image 0 (class 0): 4.6 → patch 1 (5), 8.9 → patch 2 (9). Image 1 (class 1): −1 → patch 1 (1), 100 → patch 2 (8).
    expect(Array.from(got)).toEqual([1, 2, 1, 2]);
  });
});

describe('shallow similarity rows', () => {
  it('fold each grid cell’s block of shallow positions into one vector before the cosine', () => {
    // One image, 2×4 shallow map with 1 channel, grid 1×2: cell 0 = (1, 0, 0, 0)… laid out row-major per block.
    // Shallow rows: [1, 0, 3, 4] and [0, 0, 0, 0] → cell 0 = (1, 0, 0, 0), cell 1 = (3, 4, 0, 0).
    const shallow = Float32Array.from([1, 0, 3, 4, 0, 0, 0, 0]);
    const rows = shallowSimilarityRows(shallow, [1, 2, 4, 1], [1, 2], Int32Array.from([0, 1]));
    // cos(cell0, cell0) = 1, cos(cell0, cell1) = 3/5; from cell 1: 3/5, 1.
    expect(Array.from(rows)).toEqual([1, 0.6000000238418579, 0.6000000238418579, 1]);
  });

  it('treat an all-zero cell as similar to nothing', () => {
    const rows = shallowSimilarityRows(Float32Array.from([0, 0, 2, 0]), [1, 1, 2, 2], [1, 2], Int32Array.from([1]));
    // Cell 0 is (0, 0), cell 1 is (2, 0).
    expect(Array.from(rows)).toEqual([0, 1]);
  });

  it('refuse a shallow map that the grid does not divide', () => {
    expect(() => shallowSimilarityRows(new Float32Array(9), [1, 3, 3, 1], [2, 2], Int32Array.from([0]))).toThrow(
      /shallow map \(3×3\) is not a whole multiple of the grid \(2×2\)/,
    );
  });
});

/** The cost written with plain loops, as the definition reads. */
function referenceCost(deep: Float32Array, shape: number[], positions: Int32Array, rows: Float32Array, margin: number) {
  const [b, h, w, c] = shape;
  const hw = h * w;
  const k = positions.length / b;
  const unit = (i: number, p: number) => {
    const v = Array.from(deep.subarray((i * hw + p) * c, (i * hw + p + 1) * c));
    const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return v.map((x) => x / n);
  };
  let sum = 0;
  for (let i = 0; i < b; i++)
    for (let g = 0; g < k; g++) {
      const a = unit(i, positions[i * k + g]);
      for (let q = 0; q < hw; q++) {
        const cos = unit(i, q).reduce((s, x, j) => s + x * a[j], 0);
        sum += Math.max(0, Math.abs(cos - rows[(i * k + g) * hw + q]) - margin);
      }
    }
  return sum / (b * k * hw);
}

describe('shallow alignment cost', () => {
  const shape = [2, 2, 3, 4] as const;
  const rng = new Rng(3);
  const deep = Float32Array.from({ length: 2 * 2 * 3 * 4 }, () => rng.normal());
  const positions = Int32Array.from([0, 4, 5, 2]);
  const rows = Float32Array.from({ length: 2 * 2 * 6 }, () => rng.next() * 2 - 1);

  it('is 0 when the deep rows are the shallow rows', () => {
    // Deep patches (1,0), (0,1), (1,1)/√2…: rows taken from the deep features themselves.
    const d = Float32Array.from([1, 0, 0, 1, 1, 1, 2, 0]);
    const self = Float32Array.from([1, 0, Math.SQRT1_2, 1, /* from patch 3 */ 1, 0, Math.SQRT1_2, 1]);
    const cost = shallowAlignmentCost(tf.tensor4d(d, [1, 2, 2, 2]), Int32Array.from([0, 3]), self, 0);
    expect(cost.dataSync()[0]).toBeCloseTo(0, 6);
  });

  it('equals the definition written with loops, with and without a margin', () => {
    for (const margin of [0, 0.1, 0.5]) {
      const got = shallowAlignmentCost(tf.tensor4d(deep, [...shape]), positions, rows, margin).dataSync()[0];
      expect(got, `margin ${margin}`).toBeCloseTo(referenceCost(deep, [...shape], positions, rows, margin), 6);
    }
  });

  it('has the gradient finite differences give', () => {
    const x = tf.tensor4d(deep, [...shape]);
    const grad = tf.grad((t: tf.Tensor) => shallowAlignmentCost(t as tf.Tensor4D, positions, rows, 0.1))(x);
    const g = grad.dataSync();
    const eps = 1e-3;
    for (const j of [0, 5, 13, 22, 40]) {
      const plus = Float32Array.from(deep);
      const minus = Float32Array.from(deep);
      plus[j] += eps;
      minus[j] -= eps;
      const numeric =
        (referenceCost(plus, [...shape], positions, rows, 0.1) -
          referenceCost(minus, [...shape], positions, rows, 0.1)) /
        (2 * eps);
      expect(g[j], `d/d deep[${j}]`).toBeCloseTo(numeric, 3);
    }
    expect(Math.max(...Array.from(g, Math.abs))).toBeGreaterThan(1e-3);
  });
});

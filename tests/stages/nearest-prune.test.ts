import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { classPurity, nearestPatches } from '../../trainer/src/stages/nearest-patches.ts';
import { maskSimilarities, prototypesToPrune } from '../../trainer/src/stages/prune.ts';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { memorySource } from '../support/memory-source.ts';

/**
 * Features are one-hot "part" vectors on a 2x2 grid, the head has no add-on
 * layers, so distances are exact: prototype j sits on part j.
 */
function setup() {
  const D = 4;
  const H = 2;
  const W = 2;
  // 8 images, classes 0,0,0,0,1,1,1,1. Class-0 images show part 0 at patch 0; class-1 images show part 1 at patch 3.
  // Image 5 (class 1) also shows part 0, slightly off (0.9), at patch 1: a class-0 prototype on part 0
  // has it among its neighbours. Part 2 appears only on class-1 images 4..7 (patch 2).
  const n = 8;
  const feats = new Float32Array(n * H * W * D).fill(0);
  const set = (img: number, patch: number, part: number, v: number) => (feats[(img * H * W + patch) * D + part] = v);
  for (let i = 0; i < 4; i++) set(i, 0, 0, 1 - 0.01 * i);
  for (let i = 4; i < 8; i++) {
    set(i, 3, 1, 1);
    set(i, 2, 2, 1 - 0.01 * (i - 4));
  }
  set(5, 1, 0, 0.9);
  const labels = Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1]);
  const source = memorySource(feats, [H, W, D], labels);
  // 2 classes x 2 prototypes, class-major: 0,1 -> class 0; 2,3 -> class 1.
  const head = new ProtoHead(
    { inputChannels: D, addOn: [], numClasses: 2, prototypesPerClass: 2, incorrectClassWeight: -0.5 },
    new Rng(0),
  );
  const protos = new Float32Array([
    1,
    0,
    0,
    0, // class 0, part 0: clean
    0,
    0,
    1,
    0, // class 0 but on part 2, which only class-1 images show: a planted, impure prototype
    0,
    1,
    0,
    0, // class 1, part 1
    0,
    1,
    0,
    0, // class 1, part 1
  ]);
  head.prototypes.assign(tf.tensor2d(protos, [4, D]));
  return { head, source, labels };
}

describe('global analysis and pruning', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('finds the nearest patches per image, nearest first, with their maps', () => {
    const { head, source } = setup();
    const hits = nearestPatches(head, source, 3, { quiet: true });
    // Prototype 0 = part 0: images 0,1,2 at patch 0 (distances 0, 1e-4, 4e-4).
    expect(hits[0].map((h) => h.item)).toEqual([0, 1, 2]);
    expect(hits[0].map((h) => h.patch)).toEqual([0, 0, 0]);
    expect(hits[0][1].distance).toBeCloseTo(0.0001, 6);
    expect(hits[0][0].map).toHaveLength(4);
    expect(hits[0][0].map[0]).toBeCloseTo(0, 6);
    expect(hits[0][0].map[3]).toBeCloseTo(1, 6);
    // Prototype 1 (class 0, on part 2): its nearest images are all class 1.
    expect(hits[1].map((h) => h.item)).toEqual([4, 5, 6]);
    expect(hits[1].every((h) => h.patch === 2)).toBe(true);
  });

  it("excludes the prototype's own source patch but keeps the image's next-best patch", () => {
    const { head, source } = setup();
    const hits = nearestPatches(head, source, 2, { exclude: [{ item: 0, patch: 0 }, null, null, null], quiet: true });
    expect(hits[0].map((h) => h.item)).toEqual([1, 2]);
    const all = nearestPatches(head, source, 8, { exclude: [{ item: 0, patch: 0 }, null, null, null], quiet: true });
    const img0 = all[0].find((h) => h.item === 0)!;
    expect(img0.patch).not.toBe(0);
    expect(img0.distance).toBeCloseTo(1, 6);
    // patch -1 leaves the whole image out.
    const noImage = nearestPatches(head, source, 8, {
      exclude: [{ item: 0, patch: -1 }, null, null, null],
      quiet: true,
    });
    expect(noImage[0].some((h) => h.item === 0)).toBe(false);
    expect(noImage[0]).toHaveLength(7);
    expect(noImage[1]).toHaveLength(8);
  });

  it('prunes the planted prototype and only it, with a reason', () => {
    const { head, source, labels } = setup();
    const hits = nearestPatches(head, source, 3, { quiet: true });
    const decisions = prototypesToPrune(hits, head.protoClass, labels, ['Red', 'Blue'], { k: 3, threshold: 2 });
    expect(decisions.map((d) => d.prototype)).toEqual([1]);
    expect(decisions[0].ownClass).toBe(0);
    expect(decisions[0].reason).toMatch(/0 of its 3 nearest training patches are Red \(needs 2\); 3 are Blue/);
    expect(classPurity(hits, head.protoClass, labels)).toEqual([1, 0, 1, 1]);
  });

  it("masks pruned prototypes' similarities", () => {
    const sims = Float32Array.from([1, 2, 3, 4, 5, 6]);
    expect(Array.from(maskSimilarities(sims, 3, [false, true, false]))).toEqual([1, 0, 3, 4, 0, 6]);
  });
});

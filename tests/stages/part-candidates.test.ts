import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../trainer/src/core/rng.ts';
import { loadCubCropped } from '../../trainer/src/data/cub-cropped.ts';
import { DatasetError } from '../../trainer/src/data/errors.ts';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import {
  loadPartCandidates,
  mergeExclusions,
  nearestPartDistance,
  offPartPatches,
} from '../../trainer/src/stages/part-candidates.ts';
import { pushPrototypes } from '../../trainer/src/stages/push.ts';
import { cachedSource } from '../../trainer/src/stages/sources.ts';
import { cleanup, tempDir, writeSolid, writeText } from '../data/fixtures.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const sorted = (s: Set<number> | undefined) => [...(s ?? [])].sort((a, b) => a - b);

describe('offPartPatches', () => {
  // A 2x2 grid on a 32-px input: cell centres at 8 and 24 px.
  const grid = { height: 2, width: 2, inputSize: 32 };

  it('bans the cells whose centre is farther than the radius from every visible part, along x and y', () => {
    const perItem = [
      [{ part: 0, x: 16, y: 8 }], // a 64x32 image: on the input at (8, 8), cell (0, 0)'s centre
      null, // no annotation: no candidate
      [], // no visible part: no candidate
      [{ part: 3, x: 48, y: 24 }], // (24, 24): cell (1, 1)'s centre
    ];
    const sizes = Array(4).fill({ width: 64, height: 32 });
    const near = offPartPatches(perItem, sizes, { ...grid, radius: 4 });
    expect(sorted(near.get(0))).toEqual([1, 2, 3]);
    expect(sorted(near.get(1))).toEqual([0, 1, 2, 3]);
    expect(sorted(near.get(2))).toEqual([0, 1, 2, 3]);
    expect(sorted(near.get(3))).toEqual([0, 1, 2]);
    // Radius 0 keeps a cell whose centre is the part itself; 16 reaches the next centres (16 px away), not the diagonal.
    expect(sorted(offPartPatches(perItem, sizes, { ...grid, radius: 0 }).get(3))).toEqual([0, 1, 2]);
    const wide = offPartPatches(perItem, sizes, { ...grid, radius: 16 });
    expect(wide.has(0)).toBe(false);
    expect(sorted(wide.get(1))).toEqual([0, 1, 2, 3]);
    const mid = offPartPatches(perItem, sizes, { ...grid, radius: 15.9 });
    expect(sorted(mid.get(0))).toEqual([1, 2, 3]);
  });

  it('scales part points by the image size, not the input size', () => {
    // A 16x64 image: x 12 -> 24 px on the input, y 8 -> 4 px: cell (0, 1).
    const near = offPartPatches([[{ part: 0, x: 12, y: 8 }]], [{ width: 16, height: 64 }], { ...grid, radius: 5 });
    expect(sorted(near.get(0))).toEqual([0, 2, 3]);
  });

  it('refuses mismatched lists and a negative radius', () => {
    expect(() => offPartPatches([[], []], [{ width: 1, height: 1 }], { ...grid, radius: 1 })).toThrow(
      /2 part lists but 1 image sizes/,
    );
    expect(() => offPartPatches([[]], [{ width: 1, height: 1 }], { ...grid, radius: -1 })).toThrow(/radius/);
  });
});

describe('nearestPartDistance', () => {
  it('is the larger axis distance on the input to the nearest part, Infinity without parts', () => {
    const g = { height: 2, width: 2, inputSize: 32 };
    const size = { width: 64, height: 32 };
    // Parts on the input at (10, 3) and (30, 30); cell (0, 0)'s centre is (8, 8): max(2, 5) = 5 and max(22, 22).
    const points = [
      { part: 0, x: 20, y: 3 },
      { part: 1, x: 60, y: 30 },
    ];
    expect(nearestPartDistance(points, size, g, 0, 0)).toBe(5);
    // Cell (1, 1), centre (24, 24): max(14, 21) = 21 and max(6, 6) = 6.
    expect(nearestPartDistance(points, size, g, 1, 1)).toBe(6);
    expect(nearestPartDistance([], size, g, 0, 0)).toBe(Infinity);
  });
});

describe('mergeExclusions', () => {
  it('bans a patch banned by either map', () => {
    const m = mergeExclusions(
      new Map([
        [0, new Set([1])],
        [2, new Set([0])],
      ]),
      new Map([
        [0, new Set([3, 1])],
        [5, new Set([4])],
      ]),
    );
    expect([...m.keys()].sort()).toEqual([0, 2, 5]);
    expect(sorted(m.get(0))).toEqual([1, 3]);
    expect(sorted(m.get(2))).toEqual([0]);
    expect(sorted(m.get(5))).toEqual([4]);
  });
});

describe('push onto parts', () => {
  it('takes the nearest patch among those near a part', async () => {
    const head = new ProtoHead(
      { inputChannels: 2, addOn: [], numClasses: 1, prototypesPerClass: 1, incorrectClassWeight: -0.5 },
      new Rng(3),
    );
    head.prototypes.assign(tf.tensor2d([0, 0], [1, 2]));
    // One image, a 1x2 grid on a 32-px input (centres at x 8 and 24): the nearer patch (col 0) is off the part.
    const maps = [[0.1, 0, 2, 2]];
    const src = cachedSource(
      { n: 1, shape: [1, 2, 2], batch: (idx: number[]) => Float32Array.from(idx.flatMap((i) => maps[i])) },
      null,
      Int32Array.from([0]),
    );
    const exclude = offPartPatches([[{ part: 0, x: 30, y: 16 }]], [{ width: 32, height: 32 }], {
      height: 1,
      width: 2,
      inputSize: 32,
      radius: 8,
    });
    const [rec] = await pushPrototypes(head, src, { quiet: true, exclude });
    expect(rec).toMatchObject({ item: 0, row: 0, col: 1 });
    expect(rec.distance).toBeCloseTo(8, 5);
    expect(Array.from(head.prototypes.dataSync())).toEqual([2, 2]);
  });
});

describe('loadPartCandidates', () => {
  let root: string;
  beforeAll(async () => {
    root = await tempDir('part-candidates');
  });
  afterAll(() => cleanup(root));

  /** Pre-cropped layout: images 1 (40x20) and 2 (20x20); image 1's crop starts at (10, 20). */
  async function writeDataset(dir: string, locs: string | null): Promise<void> {
    await writeSolid(join(dir, 'train_cropped', '001.A', 'A_1.png'), 40, 20, [0, 0, 0]);
    await writeSolid(join(dir, 'train_cropped', '001.A', 'A_2.png'), 20, 20, [0, 0, 0]);
    await writeText(join(dir, 'meta', 'images.txt'), '1 001.A/A_1.png\n2 001.A/A_2.png\n');
    await writeText(join(dir, 'meta', 'bounding_boxes.txt'), '1 10 20 40 20\n2 0 0 20 20\n');
    if (locs === null) return;
    await writeText(join(dir, 'meta', 'parts', 'parts.txt'), '1 back\n2 beak\n');
    await writeText(join(dir, 'meta', 'parts', 'part_locs.txt'), locs);
  }

  it('places the parts on the crops and counts the candidates', async () => {
    const dir = join(root, 'ok');
    // Image 1: beak at (40, 25) uncropped = (30, 5) on the 40x20 crop = (24, 8) on a 32-px input: cell (0, 1).
    // Image 2: its only part is invisible, so it offers no patch.
    await writeDataset(dir, '1 1 0 0 0\n1 2 40 25 1\n2 1 5 5 0\n2 2 0 0 0\n');
    const items = (await loadCubCropped(dir)).splits.train;
    expect(items.map((it) => it.id)).toEqual(['1', '2']);
    const c = await loadPartCandidates(dir, items, { height: 2, width: 2, inputSize: 32, radius: 0 });
    expect(sorted(c.exclude.get(0))).toEqual([0, 2, 3]);
    expect(sorted(c.exclude.get(1))).toEqual([0, 1, 2, 3]);
    expect(c.itemsWithCandidates).toBe(1);
    expect(c.candidatePatches).toBe(1);
  });

  it('names the missing part file and the setting', async () => {
    const dir = join(root, 'none');
    await writeDataset(dir, null);
    const items = (await loadCubCropped(dir)).splits.train;
    const err = await loadPartCandidates(dir, items, { height: 2, width: 2, inputSize: 32, radius: 8 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).file).toBe(join(dir, 'parts', 'part_locs.txt'));
    expect((err as DatasetError).message).toMatch(/push\.partRadius/);
  });
});

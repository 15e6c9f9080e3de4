/**
 * The part localisation term (loss.partLocalisation): which part each tied prototype targets, where that
 * part lies on an image and on its mirror, the cost on hand-computed distances, and a push-tune epoch with
 * it on one thread and on gradient threads.
 */
import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../trainer/src/config/config.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { loadCubCropped } from '../../trainer/src/data/cub-cropped.ts';
import { DatasetError } from '../../trainer/src/data/errors.ts';
import { type LossWeights, partLocalisationCost } from '../../trainer/src/head/losses.ts';
import { createFeatureStore } from '../../trainer/src/backbone/feature-store.ts';
import { classGroups } from '../../trainer/src/head/last-layer.ts';
import { Adam } from '../../trainer/src/optim/adam.ts';
import { GradPool } from '../../trainer/src/stages/grad-pool.ts';
import {
  loadPartTargets,
  partTargetMasks,
  pointsOnInput,
  prototypeTargetParts,
  type PartTargets,
} from '../../trainer/src/stages/part-targets.ts';
import { phaseGroups, trainPrototypeEpoch } from '../../trainer/src/stages/prototype-phase.ts';
import type { PushRecord } from '../../trainer/src/stages/push.ts';
import { sharedFeatureSource, type SharedStore } from '../../trainer/src/stages/sources.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { cleanup, tempDir, writeSolid, writeText } from '../data/fixtures.ts';
import { PhaseConfigDefaults } from '../support/phase-defaults.ts';
import { TINY_MAP, tinyHead } from '../support/shared-features.ts';

// A 2x2 grid on a 32-px input: cell centres at 8 and 24 px.
const GRID = { height: 2, width: 2, inputSize: 32 };
const rec = (prototype: number, item: number, row: number, col: number): PushRecord => ({
  prototype,
  classIndex: 0,
  item,
  row,
  col,
  distance: 0,
});

describe('prototypeTargetParts', () => {
  const points = [
    [
      { part: 2, x: 10, y: 9 }, // 2 px from cell (0, 0)'s centre
      { part: 5, x: 20, y: 24 }, // 4 px from cell (1, 1)'s centre
    ],
    null,
  ];

  it("takes the part nearest the pushed patch's centre, within the radius", () => {
    const push = [rec(0, 0, 0, 0), rec(1, 0, 1, 1), rec(2, 0, 0, 1), rec(3, 1, 0, 0), rec(4, -1, 0, 0)];
    // Cell (0, 1) centre (24, 8): part 2 is 14 px away, part 5 16 px.
    expect(Array.from(prototypeTargetParts(push, points, GRID, 8))).toEqual([2, 5, -1, -1, -1]);
    expect(Array.from(prototypeTargetParts(push, points, GRID, 14))).toEqual([2, 5, 2, -1, -1]);
    expect(Array.from(prototypeTargetParts(push, points, GRID, 3))).toEqual([2, -1, -1, -1, -1]);
  });

  it('moves crop points onto the square input', () => {
    const on = pointsOnInput(
      [[{ part: 1, x: 16, y: 30 }], null],
      [
        { width: 64, height: 40 },
        { width: 1, height: 1 },
      ],
      32,
    );
    expect(on).toEqual([[{ part: 1, x: 8, y: 24 }], null]);
  });
});

describe('partTargetMasks', () => {
  // Two classes of two prototypes; prototype 1 targets part 3, prototype 2 part 0, the others none.
  const t: PartTargets = {
    geometry: GRID,
    radius: 8,
    points: [[{ part: 3, x: 6, y: 20 }], [{ part: 0, x: 24, y: 8 }], null, []],
    target: Int32Array.from([-1, 3, 0, -1]),
    groups: { indices: Int32Array.from([0, 1, 2, 3]), perClass: 2 },
  };

  it("marks the cells within the radius of the prototype's part, mirrored on a flipped view", () => {
    const labels = Int32Array.from([0, 0, 1, 1, 0]);
    const m = Array.from(partTargetMasks(t, [0, 0, 1, 2, 3], [false, true, false, false, false], labels));
    const row = (b: number, g: number) => m.slice((b * 2 + g) * 4, (b * 2 + g + 1) * 4);
    // Item 0, part 3 at (6, 20): cell (1, 0) (centre (8, 24)); mirrored (26, 20): cell (1, 1).
    expect(row(0, 0)).toEqual([0, 0, 0, 0]);
    expect(row(0, 1)).toEqual([0, 0, 1, 0]);
    expect(row(1, 1)).toEqual([0, 0, 0, 1]);
    // Item 1 (class 1): prototype 2 targets part 0 at (24, 8), cell (0, 1); prototype 3 targets nothing.
    expect(row(2, 0)).toEqual([0, 1, 0, 0]);
    expect(row(2, 1)).toEqual([0, 0, 0, 0]);
    // No annotation, or the part not visible: nothing to learn.
    expect(row(3, 0)).toEqual([0, 0, 0, 0]);
    expect(row(4, 1)).toEqual([0, 0, 0, 0]);
    // Distances are the larger axis: 16 px reaches every cell of the 2x2 grid, 15 only the part's own.
    const wide = Array.from(partTargetMasks({ ...t, radius: 16 }, [1], [false], Int32Array.from([1])));
    expect(wide.slice(0, 4)).toEqual([1, 1, 1, 1]);
    const narrow = Array.from(partTargetMasks({ ...t, radius: 15 }, [1], [false], Int32Array.from([1])));
    expect(narrow.slice(0, 4)).toEqual([0, 1, 0, 0]);
  });

  it("follows each item's augmented view, and drops a part the view crops out", () => {
    const labels = Int32Array.from([0, 0, 1]);
    // Item 0's view moves part 3 from (6, 20) to the top right (26, 6); item 0 again, cropped out; item 1 as is.
    const moved = (x: number, y: number): [number, number] => [x + 20, y - 14];
    const views = [moved, () => null, null];
    const m = Array.from(partTargetMasks(t, [0, 0, 1], [false, false, false], labels, views));
    const row = (b: number, g: number) => m.slice((b * 2 + g) * 4, (b * 2 + g + 1) * 4);
    expect(row(0, 1)).toEqual([0, 1, 0, 0]);
    expect(row(1, 1)).toEqual([0, 0, 0, 0]);
    expect(row(2, 0)).toEqual([0, 1, 0, 0]);
    // With a view, `flipped` is the view's business (it mirrors the points itself).
    const flippedToo = Array.from(partTargetMasks(t, [0], [true], Int32Array.from([0]), [moved]));
    expect(flippedToo.slice(4, 8)).toEqual([0, 1, 0, 0]);
  });
});

describe('partLocalisationCost', () => {
  beforeAll(async () => {
    await initBackend('cpu', { quiet: true });
  });

  it('is the hinge of the best on-part distance against the best elsewhere, over the pairs with a target', () => {
    // Two images of three 1-d patches; each with two own prototypes.
    const z = tf.tensor2d([0.5, 0.2, 2, 1.5, 3, 0], [6, 1]);
    const own = tf.tensor3d([0, 1, 0, 1], [2, 2, 1]);
    // Image 0, prototype 0 at 0: distances 0.25, 0.04, 4; the part on patch 0: 0.25 − 0.04 + 0.1.
    // Image 0, prototype 1 at 1: distances 0.25, 0.64, 1; the part on patch 0 wins by 0.39: 0.
    // Image 1, prototype 0: no target. Prototype 1 at 1: distances 0.25, 4, 1; the part on patches 1 and 2:
    // 1 − 0.25 + 0.1.
    const mask = Uint8Array.from([1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1]);
    const r = partLocalisationCost(z, own, mask, 0.1);
    expect(r.pairs).toBe(3);
    expect(r.hits).toBe(1);
    expect(r.cost.dataSync()[0]).toBeCloseTo((0.31 + 0 + 0.85) / 3, 6);
    // Its gradient pulls the on-part patch toward the prototype and pushes the winner away.
    const g = tf.grad((x: tf.Tensor) => partLocalisationCost(x as tf.Tensor2D, own, mask, 0.1).cost)(z);
    // d(z − p)²/dz = 2(z − p): on-part patches +, the best other patch −; the rest 0.
    const want = [2 * 0.5, -2 * 0.2, 0, -2 * (1.5 - 1), 0, 2 * (0 - 1)].map((v) => v / 3);
    Array.from(g.dataSync()).forEach((v, i) => expect(v, `patch ${i}`).toBeCloseTo(want[i], 5));
    expect(partLocalisationCost(z, own, new Uint8Array(12), 0.1).pairs).toBe(0);
  });
});

describe('a push-tune epoch with part localisation', () => {
  const N = 12;
  const [H, W, D] = TINY_MAP;
  // Random maps in [0, 1) with part 0 marked in channel 0 of the top-left cell and part 1 in channel 1 of the
  // bottom-right one, as a part looks alike across images; the flipped store holds the mirrored maps.
  const rng = new Rng(21);
  const maps = Array.from({ length: N }, () => {
    const m = Float32Array.from({ length: H * W * D }, () => rng.next());
    m[0] += 3;
    m[((H - 1) * W + W - 1) * D + 1] += 3;
    return m;
  });
  const mirror = (m: Float32Array) => {
    const out = new Float32Array(m.length);
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++) out.set(m.subarray((r * W + c) * D, (r * W + c + 1) * D), (r * W + W - 1 - c) * D);
    return out;
  };
  const stored = (all: Float32Array[]): SharedStore => {
    const spec = { n: N, shape: TINY_MAP, encoding: 'float16' as const };
    const st = createFeatureStore(spec);
    all.forEach((m, i) => st.set(i, m));
    return { spec, data: st.data };
  };
  const orig = stored(maps);
  const flip = stored(maps.map(mirror));
  const keep = Int32Array.from({ length: N }, (_, i) => i);
  const labels = Int32Array.from(keep, (i) => i % 3);
  const phase = {
    ...PhaseConfigDefaults,
    batchSize: 6,
    microBatch: 2,
    lr: { features: 0, addOn: 2e-2, prototypes: 0, lastLayer: 0 },
  };
  const base = { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 };
  const grid = { height: H, width: W, inputSize: 48 };

  beforeAll(async () => {
    await initBackend('wasm', { quiet: true });
  });
  afterAll(() => tf.disposeVariables());

  /** Prototype j targets part j % 2, pushed onto that part's cell of an image of its class. */
  function targets(protoClass: Int32Array): PartTargets {
    return {
      geometry: grid,
      radius: 4,
      points: Array.from({ length: N }, () => [
        { part: 0, x: 8, y: 8 },
        { part: 1, x: 40, y: 40 },
      ]),
      target: Int32Array.from(protoClass, (_, j) => j % 2),
      groups: classGroups(protoClass, 3, 'test'),
    };
  }

  async function tune(threads: number, loss: LossWeights, epochs = 1) {
    const source = sharedFeatureSource({ orig, flip, keep, labels });
    const head = tinyHead();
    const tied = new Float32Array(head.numPrototypes * D);
    head.protoClass.forEach((c, j) => {
      const cell = j % 2 === 0 ? 0 : H * W - 1;
      tied.set(maps[c].subarray(cell * D, (cell + 1) * D), j * D);
    });
    head.tieToPatches(tied);
    const pool =
      threads > 1
        ? await GradPool.start({ threads, backbone: null, sources: { train: source }, head, backend: 'wasm' })
        : null;
    const opt = new Adam(phaseGroups(phase, head, null));
    const rng = new Rng(4);
    const stats = [];
    try {
      for (let e = 0; e < epochs; e++)
        stats.push(
          await trainPrototypeEpoch({
            label: 't',
            phase,
            head,
            source,
            loss,
            optimizer: opt,
            rng,
            quiet: true,
            backboneTraining: false,
            pool: pool && { pool, backbone: null },
            partTargets: (loss.partLocalisation ?? 0) > 0 ? targets(head.protoClass) : null,
          }),
        );
    } finally {
      await pool?.close();
    }
    opt.dispose();
    const weights = head.getWeights();
    head.dispose();
    return { stats, weights };
  }

  it('reports the term, changes the update, and gradient threads make the update one thread makes', async () => {
    const on = { ...base, partLocalisation: 1, partLocalisationMargin: 0.05 };
    const off = await tune(1, base);
    const one = await tune(1, on);
    const two = await tune(2, on);
    expect(off.stats[0].partLocalisation).toBeUndefined();
    expect(one.stats[0].partLocalisation).toBeGreaterThan(0);
    const diff = (a: typeof one.weights, b: typeof one.weights) =>
      Math.max(...[...a].map(([k, t]) => Math.max(...t.data.map((v, i) => Math.abs(v - b.get(k)!.data[i])))));
    expect(diff(one.weights, off.weights)).toBeGreaterThan(1e-4);
    expect(diff(one.weights, two.weights)).toBe(0);
    expect(two.stats[0].partLocalisation).toBe(one.stats[0].partLocalisation);
    expect(two.stats[0].onPart).toBe(one.stats[0].onPart);
  });

  it('brings prototypes onto their part, on the image and its mirror', async () => {
    const loss = {
      crossEntropy: 0,
      clusterCost: 0,
      separationCost: 0,
      partLocalisation: 1,
      partLocalisationMargin: 0.1,
    };
    const { stats } = await tune(1, loss, 8);
    const last = stats[stats.length - 1];
    expect(last.onPart!).toBeGreaterThan(stats[0].onPart!);
    expect(last.onPart!).toBeGreaterThan(0.9);
    expect(last.partLocalisation!).toBeLessThan(stats[0].partLocalisation! / 2);
  });
});

describe('loadPartTargets and the config', () => {
  let root: string;
  beforeAll(async () => {
    root = await tempDir('part-targets');
  });
  afterAll(() => cleanup(root));

  it('names the missing part file and the setting', async () => {
    const dir = join(root, 'none');
    await writeSolid(join(dir, 'train_cropped', '001.A', 'A_1.png'), 20, 20, [0, 0, 0]);
    await writeText(join(dir, 'meta', 'images.txt'), '1 001.A/A_1.png\n');
    const items = (await loadCubCropped(dir)).splits.train;
    const groups = { indices: Int32Array.from([0]), perClass: 1 };
    const err = await loadPartTargets(dir, items, [], GRID, 8, groups).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).file).toBe(join(dir, 'parts', 'part_locs.txt'));
    expect((err as DatasetError).message).toMatch(/loss\.partLocalisation/);
    expect((err as DatasetError).message).toMatch(/or set loss\.partLocalisation to 0/);
  });

  it('refuses the term with cached augmented copies, and takes online augmentation', () => {
    const cfg = (augment: object) => ({
      preset: 't',
      backbone: { kind: 'small-cnn' },
      data: { augment },
      head: {},
      loss: { partLocalisation: 1 },
      warmup: { epochs: 1 },
      joint: { epochs: 0 },
      push: {},
      lastLayer: {},
    });
    expect(() => parseConfig(cfg({ cachedCopies: 2 }), 'my.json')).toThrow(/data\.augment\.cachedCopies to 0/);
    expect(parseConfig(cfg({ enabled: true }), 'my.json').loss.partLocalisation).toBe(1);
    expect(parseConfig(cfg({}), 'my.json').loss.partLocalisationRadius).toBe(24);
  });
});

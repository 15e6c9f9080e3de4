/** Consistency / stability metrics (Huang et al. 2023), CUB part loading, synthetic part coverage. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { logSimilarity, SIMILARITY_EPSILON } from '@protoatlas/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRunner } from '../../trainer/src/analysis/model-runner.ts';
import {
  activationRegion,
  addClippedNoise,
  consistencyScore,
  defaultHalfSize,
  partMetrics,
  partPresence,
  prototypeConsistency,
  prototypeStability,
  stabilityScore,
  syntheticPartCoverage,
  type PartMetricsRunner,
  type PartObservation,
} from '../../trainer/src/analysis/part-metrics.ts';
import { createSmallCnn } from '../../trainer/src/backbone/small-cnn.ts';
import { loadCubCropped } from '../../trainer/src/data/cub-cropped.ts';
import { loadCubParts, type PartAnnotations, type PartPoint } from '../../trainer/src/data/cub-parts.ts';
import { DatasetError } from '../../trainer/src/data/errors.ts';
import { generateSynthetic } from '../../trainer/src/data/synthetic.ts';
import { loadSynthetic } from '../../trainer/src/data/synthetic-dataset.ts';
import type { SyntheticImageInfo, SyntheticManifest } from '../../trainer/src/data/synthetic-manifest.ts';
import type { DatasetItem, RgbImage } from '../../trainer/src/data/types.ts';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { referenceDataDir } from '../../trainer/src/core/data-path.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { cleanup, tempDir, writeSolid, writeText } from '../data/fixtures.ts';

/** A 7x7 map that is 0 except 1 at (row, col). */
function peakMap(row: number, col: number, h = 7, w = 7): Float32Array {
  const m = new Float32Array(h * w);
  m[row * w + col] = 1;
  return m;
}

describe('part presence (fixed box around the maximum)', () => {
  it('boxes the first maximum of the bicubic upsampling, +-half_size with inclusive ends', () => {
    // Cell (2, 5) of a 7x7 map spans input rows 64..95 and columns 160..191 at 224; the
    // upsampled delta ties at the two central pixels (79/80, 175/176): the first one wins.
    expect(activationRegion(peakMap(2, 5), 7, 7, 224, 36)).toEqual({ y0: 43, y1: 115, x0: 139, x1: 211 });
    // Clipped at the image edges; edge replication (as OpenCV's) puts the corner peak at (5, 5).
    expect(activationRegion(peakMap(0, 0), 7, 7, 224, 36)).toEqual({ y0: 0, y1: 41, x0: 0, x1: 41 });
  });

  it('marks the parts whose input position (truncated) falls in the box', () => {
    // Image 448x448 -> input 224: part x maps to trunc(x / 2).
    const points: PartPoint[] = [
      { part: 0, x: 278, y: 86 }, // (139, 43): the box's top-left corner, inside
      { part: 1, x: 423, y: 230 }, // x 211.5 -> 211: the right edge, inside
      { part: 2, x: 424, y: 230 }, // x 212: just outside
      { part: 3, x: 300, y: 232 }, // y 116: just below
      { part: 4, x: 350, y: 150 }, // well inside
    ];
    const hits = partPresence(peakMap(2, 5), 7, 7, points, 6, {
      imageW: 448,
      imageH: 448,
      inputSize: 224,
      halfSize: 36,
    });
    expect(Array.from(hits)).toEqual([1, 1, 0, 0, 1, 0]);
  });

  it('scales half_size with the input size (36 at 224)', () => {
    expect(defaultHalfSize(224)).toBe(36);
    expect(defaultHalfSize(112)).toBe(18);
    expect(defaultHalfSize(56)).toBe(9);
  });
});

/** Observations of one prototype: `covered[i]` parts hit on image i, `visible[i]` parts annotated (default: all). */
function obs(numParts: number, covered: number[][], visible?: number[][]): PartObservation[] {
  return covered.map((c, i) => {
    const hits = new Uint8Array(numParts);
    c.forEach((k) => (hits[k] = 1));
    const vis = new Uint8Array(numParts).fill(visible ? 0 : 1);
    visible?.[i].forEach((k) => (vis[k] = 1));
    return { hits, visible: vis };
  });
}

describe('consistency', () => {
  const fourOfFive = obs(3, [[0], [0], [0, 1], [0], [2]]); // part 0: 4/5 = 0.8
  const threeOfFour = obs(3, [[0], [0], [0], [1]]); // part 0: 0.75
  // Part 1 visible on 2 of 6 images and covered on both: 2/2, whatever the other images.
  const rareButAlways = obs(3, [[1], [1], [], [], [], []], [[0, 1], [1], [0], [0], [0], [0]]);
  const never = obs(3, [[], [], []]);

  it('is met at exactly the threshold and not just below', () => {
    expect(prototypeConsistency(fourOfFive)).toEqual({ consistent: true, topPart: 0, topPartFrequency: 0.8 });
    expect(prototypeConsistency(threeOfFour)).toEqual({ consistent: false, topPart: 0, topPartFrequency: 0.75 });
    expect(prototypeConsistency(threeOfFour, 0.75).consistent).toBe(true);
  });

  it('divides by the images where the part is visible', () => {
    expect(prototypeConsistency(rareButAlways)).toEqual({ consistent: true, topPart: 1, topPartFrequency: 1 });
    expect(prototypeConsistency(never)).toEqual({ consistent: false, topPart: -1, topPartFrequency: 0 });
  });

  it('scores the share of consistent prototypes, leaving out prototypes without images', () => {
    expect(consistencyScore([fourOfFive, threeOfFour, rareButAlways, never])).toBe(0.5);
    expect(consistencyScore([fourOfFive, threeOfFour, rareButAlways, never], 0.75)).toBe(0.75);
    expect(consistencyScore([fourOfFive, []])).toBe(1);
    expect(consistencyScore([[]])).toBeNaN();
  });

  it('rejects a covered part that is not visible', () => {
    expect(() => prototypeConsistency(obs(2, [[1]], [[0]]))).toThrow(/covered but not visible/);
  });
});

describe('stability', () => {
  const v = (...bits: number[]) => Uint8Array.from(bits);
  it('is the share of images whose part vector is unchanged, averaged over prototypes', () => {
    const clean = [v(1, 0, 0), v(0, 1, 1), v(0, 0, 0), v(1, 1, 0)];
    expect(
      prototypeStability(
        clean,
        clean.map((x) => x.slice()),
      ),
    ).toBe(1);
    const noisy = [v(1, 0, 0), v(0, 1, 0), v(0, 0, 0), v(1, 1, 0)]; // one part of one image changed
    expect(prototypeStability(clean, noisy)).toBe(0.75);
    expect(stabilityScore([clean, [v(1, 0, 0), v(0, 0, 1)]], [noisy, [v(1, 0, 0), v(0, 0, 0)]])).toBe((0.75 + 0.5) / 2);
    expect(stabilityScore([clean, []], [noisy, []])).toBe(0.75);
  });

  it('refuses mismatched inputs', () => {
    expect(() => prototypeStability([v(1)], [])).toThrow(/1 clean vs 0 noisy/);
    expect(() => stabilityScore([[v(1)]], [])).toThrow();
  });

  it('adds seeded Gaussian noise clipped to +-clip', () => {
    const input = new Float32Array(20_000).fill(0.5);
    const a = addClippedNoise(input, new Rng(3), 0.2, 0.25);
    const b = addClippedNoise(input, new Rng(3), 0.2, 0.25);
    expect(Array.from(a)).toEqual(Array.from(b));
    const d = Array.from(a, (x) => x - 0.5);
    expect(Math.max(...d.map(Math.abs))).toBeLessThanOrEqual(0.25 + 1e-6);
    // P(|N(0, 0.2)| > 0.25) = 21%: about that many values sit on the clip.
    const clipped = d.filter((x) => Math.abs(x) > 0.25 - 1e-6).length / d.length;
    expect(clipped).toBeGreaterThan(0.18);
    expect(clipped).toBeLessThan(0.24);
    expect(Math.abs(d.reduce((s, x) => s + x, 0) / d.length)).toBeLessThan(0.01);
    expect(input[0]).toBe(0.5); // the clean input is left alone
  });
});

describe('loadCubParts', () => {
  let root: string;
  beforeAll(async () => {
    root = await tempDir('cub-parts');
  });
  afterAll(() => cleanup(root));

  /** A pre-cropped layout: 2 classes, images 1, 2 (class 1) and 5 (class 2), with meta/. */
  async function writeCropped(dir: string, locs: string, parts = '1 back\n2 beak\n3 left eye\n'): Promise<void> {
    await writeSolid(join(dir, 'train_cropped', '001.A', 'A_1.png'), 20, 10, [0, 0, 0]);
    await writeSolid(join(dir, 'train_cropped', '001.A', 'A_2.png'), 20, 10, [0, 0, 0]);
    await writeSolid(join(dir, 'train_cropped', '002.B', 'B_5.png'), 20, 10, [0, 0, 0]);
    await writeText(join(dir, 'meta', 'images.txt'), '1 001.A/A_1.png\n2 001.A/A_2.png\n5 002.B/B_5.png\n');
    await writeText(
      join(dir, 'meta', 'bounding_boxes.txt'),
      '1 10.0 20.0 20.0 10.0\n2 3.7 0.2 20.0 10.0\n5 0 0 20 10\n',
    );
    if (parts) await writeText(join(dir, 'meta', 'parts', 'parts.txt'), parts);
    if (locs) await writeText(join(dir, 'meta', 'parts', 'part_locs.txt'), locs);
  }

  const LOCS = [
    '1 1 15.0 25.0 1',
    '1 2 0.0 0.0 0', // invisible: left out
    '1 3 29.0 29.0 1',
    '2 1 4.0 1.0 1',
    '2 2 10.5 5.0 1',
    '2 3 0.0 0.0 0',
  ].join('\n');

  it('places visible parts on the crop (pre-cropped layout, boxes from meta/)', async () => {
    const dir = join(root, 'ok');
    await writeCropped(dir, `${LOCS}\n`);
    const ds = await loadCubCropped(dir);
    const items = ds.splits.train;
    expect(items.map((it) => it.id)).toEqual(['1', '2', '5']);
    const parts = await loadCubParts(dir, items);
    expect(parts?.names).toEqual(['back', 'beak', 'left eye']);
    expect(parts?.perItem).toEqual([
      [
        { part: 0, x: 5, y: 5 },
        { part: 2, x: 19, y: 9 },
      ],
      // Box corner (3.7, 0.2) is cut at whole pixels (3, 0).
      [
        { part: 0, x: 1, y: 1 },
        { part: 1, x: 7.5, y: 5 },
      ],
      null, // image 5 has no part lines
    ]);
  });

  it('uses the item box (official layout) and gives null to items without a CUB id', async () => {
    const dir = join(root, 'official');
    await writeText(join(dir, 'parts', 'parts.txt'), '1 back\n2 beak\n');
    await writeText(join(dir, 'parts', 'part_locs.txt'), '7 1 50 60 1\n7 2 51.5 61 1\n');
    const items: DatasetItem[] = [
      { id: '7', path: join(dir, 'images', 'x.jpg'), label: 0, box: [40.6, 55, 30, 30] },
      { id: '001.A/x.jpg', path: join(dir, 'x.jpg'), label: 0 },
    ];
    const parts = await loadCubParts(dir, items);
    expect(parts?.perItem).toEqual([
      [
        { part: 0, x: 10, y: 5 },
        { part: 1, x: 11.5, y: 6 },
      ],
      null,
    ]);
  });

  it('returns null without part files', async () => {
    const dir = join(root, 'none');
    await writeCropped(dir, '', '');
    expect(await loadCubParts(dir, (await loadCubCropped(dir)).splits.train)).toBeNull();
  });

  async function partsError(name: string, locs: string, parts?: string): Promise<DatasetError> {
    const dir = join(root, name);
    await writeCropped(dir, locs, parts);
    const err = await loadCubParts(dir, (await loadCubCropped(dir)).splits.train).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    return err as DatasetError;
  }

  it('names file and line of malformed part files', async () => {
    const locsFile = (name: string) => join(root, name, 'meta', 'parts', 'part_locs.txt');
    let err = await partsError('bad-visible', '1 1 15 25 1\n1 2 3 4 2\n');
    expect(err.file).toBe(locsFile('bad-visible'));
    expect(err.line).toBe(2);
    expect(err.message).toMatch(/visible must be 0 or 1, found "2"/);

    err = await partsError('bad-part', '1 1 15 25 1\n\n1 4 3 4 1\n');
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/part id 4 is not in parts.txt/);

    err = await partsError('bad-number', '1 1 x 25 1\n');
    expect(err.message).toMatch(/x "x" is not a number/);

    err = await partsError('bad-fields', '1 1 15 25\n');
    expect(err.message).toMatch(/expected 5 fields, found 4/);

    err = await partsError('repeat', '1 1 15 25 1\n1 1 16 25 1\n');
    expect(err.line).toBe(2);
    expect(err.message).toMatch(/repeats line 1/);

    err = await partsError('gap', '1 1 15 25 1\n', '1 back\n3 beak\n');
    expect(err.file).toBe(join(root, 'gap', 'meta', 'parts', 'parts.txt'));
    expect(err.line).toBe(2);

    // parts.txt present, part_locs.txt missing: an error, not "no annotations".
    err = await partsError('half', '');
    expect(err.file).toBe(locsFile('half'));
    expect(err.message).toMatch(/missing/);
  });

  it('needs a bounding box for an item without one', async () => {
    const dir = join(root, 'no-box');
    await writeText(join(dir, 'parts', 'parts.txt'), '1 back\n');
    await writeText(join(dir, 'parts', 'part_locs.txt'), '3 1 5 5 1\n');
    await writeText(join(dir, 'bounding_boxes.txt'), '4 0 0 10 10\n');
    const err = await loadCubParts(dir, [{ id: '3', path: 'a.jpg', label: 0 }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).message).toMatch(/image id 3 has part locations but no bounding box/);
  });
});

const CUB = join(referenceDataDir(), 'cub200');
const HAVE_CUB = existsSync(join(CUB, 'meta', 'parts', 'part_locs.txt'));

const NO_CUB = ` (skipped: ${CUB}/meta/parts/part_locs.txt not found; set PROTOPNET_DATA)`;

describe.skipIf(!HAVE_CUB)(`real CUB parts${HAVE_CUB ? '' : NO_CUB}`, () => {
  it('puts every visible part of the first images inside their cropped image', async () => {
    const ds = await loadCubCropped(CUB);
    const items = ds.splits.train.slice(0, 40);
    const parts = await loadCubParts(CUB, items);
    expect(parts?.names).toHaveLength(15);
    expect(parts?.names[0]).toBe('back');
    for (const [i, item] of items.entries()) {
      const points = parts!.perItem[i];
      expect(points, item.path).not.toBeNull();
      expect(points!.length).toBeGreaterThan(0);
      const { width, height } = await sharp(item.path).metadata();
      for (const p of points!) {
        expect(p.x).toBeGreaterThanOrEqual(0);
        expect(p.y).toBeGreaterThanOrEqual(0);
        expect(p.x).toBeLessThan(width!);
        expect(p.y).toBeLessThan(height!);
      }
    }
  });
});

describe('syntheticPartCoverage', () => {
  const box = (x: number, y: number, w: number, h: number): [number, number, number, number] => [x, y, w, h];
  const image = (label: number, parts: Partial<SyntheticImageInfo['parts']>): SyntheticImageInfo => ({
    split: 'train',
    label,
    mirrored: false,
    attributes: { beak: 'x', crest: 'x', wingbar: 'x', tail: 'x', eyering: 'x' },
    discriminativeParts: [],
    parts: { beak: null, crest: null, wingbar: null, tail: null, eyering: null, head: null, body: null, ...parts },
  });
  const manifest: SyntheticManifest = {
    format: 'protoatlas-synthetic',
    version: 1,
    seed: 0,
    size: 64,
    trainPerClass: 1,
    testPerClass: 0,
    parts: ['beak', 'crest', 'wingbar', 'tail', 'eyering'],
    classes: [
      { name: 'a', attributes: {}, discriminativeParts: ['beak', 'tail'] },
      { name: 'b', attributes: {}, discriminativeParts: ['crest'] },
    ],
    images: {
      'train/a/0.png': image(0, { beak: box(40, 10, 6, 4), tail: box(2, 30, 10, 8), body: box(10, 20, 30, 20) }),
      'train/b/0.png': image(1, { crest: null, beak: box(40, 10, 6, 4) }),
    },
  };

  it('counts a prototype when its box holds at least half of a discriminative part', () => {
    const res = syntheticPartCoverage(manifest, [
      { prototype: 0, classId: 0, imageKey: 'train/a/0.png', box: { x: 38, y: 8, w: 10, h: 10 } }, // whole beak
      { prototype: 1, classId: 0, imageKey: 'train/a/0.png', box: { x: 7, y: 30, w: 20, h: 20 } }, // half the tail
      { prototype: 2, classId: 0, imageKey: 'train/a/0.png', box: { x: 8, y: 30, w: 20, h: 20 } }, // 40% of the tail
      { prototype: 3, classId: 0, imageKey: 'train/a/0.png', box: { x: 15, y: 25, w: 10, h: 10 } }, // body only: not discriminative
      { prototype: 4, classId: 1, imageKey: 'train/b/0.png', box: { x: 38, y: 8, w: 10, h: 10 } }, // beak, but class b has no crest here
    ]);
    expect(res.perPrototype.map((p) => p.coveredPart)).toEqual(['beak', 'tail', null, null, null]);
    expect(res.coverage).toBe(2 / 5);
  });

  it('rejects unknown images', () => {
    expect(() =>
      syntheticPartCoverage(manifest, [
        { prototype: 0, classId: 0, imageKey: 'nope.png', box: { x: 0, y: 0, w: 1, h: 1 } },
      ]),
    ).toThrow(/nope.png/);
  });
});

/**
 * A fake model on 8x8 inputs with a 2x2 feature map. Image k is a solid image of value
 * 20k; with std 0.1 its normalised value is 0.78k, so k survives the +-0.25 noise.
 * Prototype j's distance is 0 in the cell peaks[k][j] (noisy[k][j] under noise), 10 elsewhere.
 */
function fakeRunner(
  protoClass: number[],
  peaks: number[][],
  noisyPeaks: Record<string, number>,
): PartMetricsRunner & { noisyCalls: number } {
  const m = protoClass.length;
  const runner = {
    noisyCalls: 0,
    preprocess: {
      size: 8,
      mean: [0, 0, 0] as [number, number, number],
      std: [0.1, 0.1, 0.1] as [number, number, number],
    },
    featureShape: [2, 2, 1] as [number, number, number],
    head: { protoClass: Int32Array.from(protoClass), epsilon: SIMILARITY_EPSILON },
    async loadImage(path: string): Promise<{ input: RgbImage; width: number; height: number }> {
      const k = Number(/img(\d+)/.exec(path)![1]);
      if (k >= peaks.length) throw new Error(`image ${k} has no parts and must not be loaded`);
      return { input: { width: 8, height: 8, data: new Uint8Array(8 * 8 * 3).fill(20 * k) }, width: 16, height: 16 };
    },
    async distanceMaps(input: Float32Array, n: number): Promise<Float32Array> {
      const per = 8 * 8 * 3;
      const out = new Float32Array(n * 4 * m).fill(10);
      for (let b = 0; b < n; b++) {
        const px = input.subarray(b * per, (b + 1) * per);
        const k = Math.round(px[0] / 0.784);
        const noisy = px.some((x) => x !== px[0]);
        if (noisy) runner.noisyCalls++;
        for (let j = 0; j < m; j++) {
          const cell = noisy ? (noisyPeaks[`${k},${j}`] ?? peaks[k][j]) : peaks[k][j];
          out[(b * 4 + cell) * m + j] = 0;
        }
      }
      return out;
    },
  };
  return runner;
}

describe('partMetrics (fake model)', () => {
  // Parts on the four corners of a 16x16 image; a peak in cell c covers exactly part c
  // (cells row-major: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right).
  const NAMES = ['tl', 'tr', 'bl', 'br'];
  const corners: PartPoint[] = [
    { part: 0, x: 0, y: 0 },
    { part: 1, x: 15, y: 0 },
    { part: 2, x: 0, y: 15 },
    { part: 3, x: 15, y: 15 },
  ];
  const labels = [0, 0, 0, 0, 0, 1, 1, 0];
  const items: DatasetItem[] = labels.map((label, k) => ({ id: String(k), path: `/fake/img${k}.png`, label }));
  const parts: PartAnnotations = {
    names: NAMES,
    // Image 6 lacks br; image 7 has no annotation at all.
    perItem: [corners, corners, corners, corners, corners, corners, corners.slice(0, 3), null],
    source: 'test',
  };
  // Prototypes 0, 1 of class 0, 2 of class 1, 3 of class 2 (no images).
  const protoClass = [0, 0, 1, 2];
  const peaks = [
    [0, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 2, 0, 0],
    [0, 3, 0, 0],
    [3, 0, 0, 0],
    [0, 0, 3, 0],
    [0, 0, 3, 0], // br is not visible here: prototype 2 covers nothing
  ];
  const noisyPeaks = { '1,0': 1, '5,2': 2 };

  it('evaluates each prototype on its class, with and without noise', async () => {
    const runner = fakeRunner(protoClass, peaks, noisyPeaks);
    const res = await partMetrics(runner, items, parts, { halfSize: 3, batchSize: 3, quiet: true, seed: 1 });
    expect(res.images).toBe(7);
    expect(runner.noisyCalls).toBe(7);
    expect(res.perPrototype).toEqual([
      // tl on 4 of 5 images: consistent at exactly 0.8; image 1 moves under noise.
      {
        prototype: 0,
        classIndex: 0,
        images: 5,
        consistent: true,
        topPart: 'tl',
        topPartFrequency: 0.8,
        stability: 0.8,
        noPart: 0,
      },
      {
        prototype: 1,
        classIndex: 0,
        images: 5,
        consistent: false,
        topPart: 'tl',
        topPartFrequency: 0.4,
        stability: 1,
        noPart: 0,
      },
      // br covered on the one image where it is visible: 1/1; on image 6 (br hidden) it covers no part.
      {
        prototype: 2,
        classIndex: 1,
        images: 2,
        consistent: true,
        topPart: 'br',
        topPartFrequency: 1,
        stability: 0.5,
        noPart: 0.5,
      },
    ]);
    expect(res.consistency).toBeCloseTo(2 / 3, 12);
    expect(res.stability).toBeCloseTo((0.8 + 1 + 0.5) / 3, 12);
  });

  it('skips pruned prototypes and is fully stable without noise', async () => {
    const runner = fakeRunner(protoClass, peaks, noisyPeaks);
    const res = await partMetrics(runner, items, parts, {
      halfSize: 3,
      quiet: true,
      pruned: [false, true],
      noiseStd: 0,
    });
    expect(res.perPrototype.map((p) => p.prototype)).toEqual([0, 2]);
    expect(res.consistency).toBe(1);
    expect(res.stability).toBe(1);
    expect(runner.noisyCalls).toBe(0);
  });

  it('fails clearly when no image has annotations', async () => {
    const none: PartAnnotations = { names: NAMES, perItem: items.map(() => null), source: '/x/meta' };
    await expect(partMetrics(fakeRunner(protoClass, peaks, {}), items, none, { quiet: true })).rejects.toThrow(
      /none of the 8 images has part annotations \(from \/x\/meta\)/,
    );
  });
});

describe('partMetrics (tiny real model on synthetic birds)', () => {
  let dir: string;
  beforeAll(async () => {
    await initBackend('cpu', { quiet: true });
    dir = await tempDir('part-metrics-e2e');
    await generateSynthetic(dir, { classes: 2, trainPerClass: 4, testPerClass: 0, size: 48, seed: 5 });
  });
  afterAll(() => cleanup(dir));

  it('matches a per-image recomputation and is deterministic', async () => {
    const ds = await loadSynthetic(dir);
    const items = ds.splits.train;
    const manifest = JSON.parse(await readFile(join(dir, 'synthetic.json'), 'utf8')) as SyntheticManifest;
    // Part points: the centres of the synthetic part boxes.
    const names = manifest.parts;
    const parts: PartAnnotations = {
      names,
      perItem: items.map((it) =>
        names.flatMap((name, part) => {
          const b = manifest.images[it.id].parts[name];
          return b ? [{ part, x: b[0] + b[2] / 2, y: b[1] + b[3] / 2 }] : [];
        }),
      ),
      source: dir,
    };
    const cnn = createSmallCnn({ inputSize: 32, channels: [4, 8], seed: 2 });
    const head = new ProtoHead(
      {
        inputChannels: 8,
        addOn: [{ channels: 4, activation: 'sigmoid' }],
        numClasses: 2,
        prototypesPerClass: 2,
        incorrectClassWeight: -0.5,
      },
      new Rng(2),
    );
    const runner = new ModelRunner(head, { frozen: null, trainable: cnn });

    const res = await partMetrics(runner, items, parts, { quiet: true, batchSize: 3, seed: 4 });
    expect(res.images).toBe(8);
    expect(res.halfSize).toBe(defaultHalfSize(32));
    expect(res.perPrototype.map((p) => [p.prototype, p.images])).toEqual([
      [0, 4],
      [1, 4],
      [2, 4],
      [3, 4],
    ]);

    // Recompute each prototype's part frequencies through ModelRunner.imageDistances.
    const loaded = await Promise.all(items.map((it) => runner.loadImage(it.path)));
    const maps = await runner.imageDistances(loaded.map((l) => l.input));
    for (const p of res.perPrototype) {
      const o: PartObservation[] = [];
      items.forEach((it, i) => {
        if (it.label !== p.classIndex) return;
        const sim = Array.from({ length: 64 }, (_, q) => logSimilarity(maps[i].data[q * 4 + p.prototype]));
        const hits = partPresence(sim, 8, 8, parts.perItem[i]!, names.length, {
          imageW: 48,
          imageH: 48,
          inputSize: 32,
          halfSize: res.halfSize,
        });
        o.push({
          hits,
          visible: Uint8Array.from(names, (_, k) => (parts.perItem[i]!.some((pt) => pt.part === k) ? 1 : 0)),
        });
      });
      const c = prototypeConsistency(o);
      expect(p.topPartFrequency).toBe(c.topPartFrequency);
      expect(p.topPart).toBe(c.topPart >= 0 ? names[c.topPart] : null);
    }

    const again = await partMetrics(runner, items, parts, { quiet: true, batchSize: 5, seed: 4 });
    expect(again).toEqual(res);
    const clean = await partMetrics(runner, items, parts, { quiet: true, noiseStd: 0 });
    expect(clean.stability).toBe(1);
  });
});

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import {
  imageSizeFromHeader,
  lookAlikes,
  speciesGroup,
  speciesSlug,
  votesFor,
  type Manifest,
} from '@protoatlas/shared';
import { barChart, lineChart, niceTicks, runs } from '../../site/src/lib/charts.ts';
import { bundleDir } from '../../site/src/lib/atlas.ts';

describe('picture sizes from file headers', () => {
  it('reads lossy, lossless and extended WebP and PNG', async () => {
    const raw = { raw: { width: 37, height: 23, channels: 3 as const } };
    const px = Buffer.alloc(37 * 23 * 3, 120);
    const cases = {
      lossy: await sharp(px, raw).webp({ quality: 80 }).toBuffer(),
      lossless: await sharp(px, raw).webp({ lossless: true }).toBuffer(),
      alpha: await sharp(Buffer.alloc(37 * 23 * 4, 90), { raw: { width: 37, height: 23, channels: 4 } })
        .webp()
        .toBuffer(),
      png: await sharp(px, raw).png().toBuffer(),
    };
    for (const [kind, buf] of Object.entries(cases)) {
      expect([kind, imageSizeFromHeader(buf.subarray(0, 32))]).toEqual([
        kind,
        { format: kind === 'png' ? 'png' : 'webp', width: 37, height: 23 },
      ]);
    }
    expect(imageSizeFromHeader(new TextEncoder().encode('GIF89a, not a picture we read.....'))).toBeNull();
    // A JPEG's frame header comes after its metadata: readable from a file's first bytes too.
    const jpeg = await sharp(px, raw).withMetadata({ orientation: 3 }).jpeg().toBuffer();
    expect(imageSizeFromHeader(jpeg.subarray(0, 1024))).toEqual({ format: 'jpeg', width: 37, height: 23 });
  });
});

describe('chart geometry', () => {
  it('nice ticks cover the range in round steps', () => {
    expect(niceTicks(0, 1, 4)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(niceTicks(-0.5, 1, 4)).toEqual([-0.5, 0, 0.5, 1]);
    expect(niceTicks(0, 17, 4)).toEqual([0, 5, 10, 15, 20]);
  });

  it('draws lines with gaps for missing values, stage bands and a reference level', () => {
    const c = lineChart([{ name: 'a', values: [0, 0.5, null, 1] }], {
      yMin: 0,
      yMax: 1,
      bands: runs(['w', 'w', 'j', 'j']),
      refs: [{ value: 0.5, label: 'base' }],
      frame: { width: 340, height: 140, left: 20, right: 20, top: 20, bottom: 20 },
    });
    // x spans 20..320 over 4 points; y 120 (0) .. 20 (1). The null breaks the line into two.
    expect(c.lines[0].d).toBe('M20 120L120 70M320 20');
    expect(c.bands.map((b) => [b.label, b.x, b.w])).toEqual([
      ['w', 20, 150],
      ['j', 170, 150],
    ]);
    expect(c.refs).toEqual([{ y: 70, label: 'base' }]);
    expect(runs(['a', 'a', 'b', 'a'])).toEqual([
      { from: 0, to: 1, label: 'a' },
      { from: 2, to: 2, label: 'b' },
      { from: 3, to: 3, label: 'a' },
    ]);
  });

  it('uses decades on a log axis', () => {
    const c = lineChart([{ name: 'loss', values: [3, 0.5, 20] }], { log: true });
    expect(c.yTicks.map((t) => t.label)).toEqual(['0.1', '1', '10', '100']);
    const ys = c.lines[0].points.map((p) => p.y);
    // Equal ratios are equal distances: 0.5 -> 3 -> 20 are ~ x6 and x6.7.
    expect(ys[1] - ys[0]).toBeCloseTo((Math.log10(6) / Math.log10(20 / 3)) * (ys[0] - ys[2]), 0);
  });

  it('draws one bar per class in three paths, the highlighted one apart', () => {
    const c = barChart([1, -0.5, 0, 0.25], 0, {
      frame: { width: 100, height: 100, left: 0, right: 0, top: 0, bottom: 0 },
    });
    expect(c.highlight.match(/M/g)).toHaveLength(1);
    expect(c.positive.match(/M/g)).toHaveLength(1); // 0.25 (the zero weight draws nothing)
    expect(c.negative.match(/M/g)).toHaveLength(1);
    // Scale -0.5..1: zero sits a third of the way up.
    expect(c.zeroY).toBeCloseTo(66.67, 1);
  });
});

describe('atlas facts from a manifest', () => {
  const proto = (id: number, classId: number, weights: number[], nearest: number[], pruned = false) => ({
    id,
    classId,
    weights,
    pruned,
    nearest: { train: nearest.map((c) => ({ classId: c })), val: [] },
  });
  const m = {
    prototypes: [
      proto(0, 0, [1, 0.3, -0.5], [0, 1, 1]),
      proto(1, 1, [0.2, 1, -0.5], [1, 0]),
      proto(2, 2, [0.6, -0.5, 1], [2], true),
      proto(3, 2, [0.05, -0.5, 1], [0, 2]),
    ],
  } as unknown as Pick<Manifest, 'prototypes'>;

  it('lists the other species whose live prototypes vote for a class, strongest first', () => {
    expect(votesFor(m, 0)).toEqual([
      { prototypeId: 1, fromClassId: 1, weight: 0.2 },
      { prototypeId: 3, fromClassId: 2, weight: 0.05 },
    ]);
    expect(votesFor(m, 2)).toEqual([]);
  });

  it('finds look-alikes through nearest training patches', () => {
    expect(lookAlikes(m, 0)).toEqual([
      { classId: 1, prototypes: [1], patches: 1 },
      { classId: 2, prototypes: [3], patches: 1 },
    ]);
    expect(lookAlikes(m, 1)).toEqual([{ classId: 0, prototypes: [0], patches: 2 }]);
  });

  it('makes URL slugs and groups from CUB keys and names', () => {
    expect(speciesSlug('001.Black_footed_Albatross')).toBe('001-black-footed-albatross');
    expect(speciesSlug("Chuck-will's-widow (Été)")).toBe('chuck-will-s-widow-ete');
    expect(speciesGroup('Black footed Albatross')).toBe('Albatross');
  });

  it('takes PROTOATLAS_BUNDLE relative to where npm was started', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-bundle-dir-'));
    await writeFile(join(dir, 'manifest.json'), '{}');
    const name = dir.split('/').pop()!;
    expect(bundleDir({ PROTOATLAS_BUNDLE: name, INIT_CWD: tmpdir() } as NodeJS.ProcessEnv)).toBe(dir);
    expect(() => bundleDir({} as NodeJS.ProcessEnv)).toThrow(/PROTOATLAS_BUNDLE is not set/);
    expect(() => bundleDir({ PROTOATLAS_BUNDLE: join(dir, 'nope') } as NodeJS.ProcessEnv)).toThrow(/no manifest.json/);
  });
});

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../trainer/src/data/decode.ts';
import { loadDataset } from '../../trainer/src/data/load-dataset.ts';
import { generateSynthetic } from '../../trainer/src/data/synthetic.ts';
import { PARTS, differingParts } from '../../trainer/src/data/synthetic-design.ts';
import { readSyntheticManifest, type SyntheticManifest } from '../../trainer/src/data/synthetic-manifest.ts';
import { cleanup, pixelAt, tempDir, writeText } from './fixtures.ts';

const OPTS = { classes: 6, trainPerClass: 5, testPerClass: 2, size: 64, seed: 11 };
let dirA: string;
let dirB: string;
let manifest: SyntheticManifest;

async function listFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

beforeAll(async () => {
  dirA = await tempDir('synth-a');
  dirB = await tempDir('synth-b');
  manifest = await generateSynthetic(dirA, OPTS);
  await generateSynthetic(dirB, OPTS);
});
afterAll(async () => {
  await cleanup(dirA);
  await cleanup(dirB);
});

describe('generateSynthetic', () => {
  it('writes the requested counts and a manifest that validates', async () => {
    const files = await listFiles(dirA);
    expect(files.filter((f) => f.startsWith('train/'))).toHaveLength(30);
    expect(files.filter((f) => f.startsWith('test/'))).toHaveLength(12);
    expect(files).toContain('synthetic.json');
    expect(Object.keys(manifest.images).sort()).toEqual(files.filter((f) => f.endsWith('.png')));
    expect(await readSyntheticManifest(dirA)).toEqual(manifest);
    expect(manifest.classes).toHaveLength(6);
    expect(manifest.classes[0].name).toMatch(/^001\.[A-Z][a-z]+(_[A-Z][a-z]+)+$/);
  });

  it('is byte-for-byte deterministic for a seed, and the seed matters', async () => {
    const files = await listFiles(dirA);
    expect(await listFiles(dirB)).toEqual(files);
    for (const f of files)
      expect(Buffer.compare(await readFile(join(dirA, f)), await readFile(join(dirB, f))), f).toBe(0);
    const other = await tempDir('synth-c');
    try {
      await generateSynthetic(other, { ...OPTS, seed: 12 });
      const a = await readFile(join(dirA, 'synthetic.json'), 'utf8');
      expect(await readFile(join(other, 'synthetic.json'), 'utf8')).not.toBe(a);
    } finally {
      await cleanup(other);
    }
  });

  it('decides the class by parts only: any two classes differ in at least two parts', () => {
    for (let a = 0; a < manifest.classes.length; a++) {
      for (let b = a + 1; b < manifest.classes.length; b++) {
        expect(
          differingParts(manifest.classes[a].attributes, manifest.classes[b].attributes).length,
        ).toBeGreaterThanOrEqual(2);
      }
    }
    for (const c of manifest.classes) {
      expect(c.discriminativeParts.length).toBeGreaterThanOrEqual(2);
      expect(Object.keys(c.attributes).sort()).toEqual([...c.discriminativeParts].sort());
    }
  });

  it('every image shows its class values on the discriminative parts', () => {
    for (const info of Object.values(manifest.images)) {
      const cls = manifest.classes[info.label];
      expect(info.discriminativeParts).toEqual(cls.discriminativeParts);
      for (const p of cls.discriminativeParts) expect(info.attributes[p]).toBe(cls.attributes[p]);
      expect(Object.keys(info.attributes).sort()).toEqual([...PARTS].sort());
    }
  });

  it('records part boxes inside the image, with the crest box null exactly when there is no crest', () => {
    for (const [rel, info] of Object.entries(manifest.images)) {
      for (const [part, box] of Object.entries(info.parts)) {
        if (part === 'crest' && info.attributes.crest === 'none') {
          expect(box, rel).toBeNull();
          continue;
        }
        expect(box, `${rel} ${part}`).not.toBeNull();
        const [x, y, w, h] = box!;
        expect(x).toBeGreaterThanOrEqual(0);
        expect(y).toBeGreaterThanOrEqual(0);
        expect(w).toBeGreaterThan(0);
        expect(h).toBeGreaterThan(0);
        expect(x + w).toBeLessThanOrEqual(OPTS.size);
        expect(y + h).toBeLessThanOrEqual(OPTS.size);
      }
      // Large enough to learn: the beak is at least 6 px long at size 64.
      const [, , bw, bh] = info.parts.beak!;
      expect(Math.max(bw, bh), rel).toBeGreaterThanOrEqual(6);
    }
  });

  it('paints the beak and wing bar colours inside their boxes', async () => {
    const colours: Record<string, number[]> = {
      red: [220, 30, 35],
      yellow: [250, 215, 25],
      blue: [35, 90, 235],
      black: [25, 25, 25],
      white: [250, 250, 250],
    };
    const countNear = (img: Awaited<ReturnType<typeof decodeImage>>, box: number[], rgb: number[]) => {
      let n = 0;
      for (let y = box[1]; y < box[1] + box[3]; y++) {
        for (let x = box[0]; x < box[0] + box[2]; x++) {
          if (pixelAt(img, x, y).every((v, c) => Math.abs(v - rgb[c]) <= 14)) n++;
        }
      }
      return n;
    };
    for (const [rel, info] of Object.entries(manifest.images).slice(0, 12)) {
      const img = await decodeImage(join(dirA, rel));
      expect([img.width, img.height]).toEqual([64, 64]);
      expect(
        countNear(img, info.parts.beak!, colours[info.attributes.beak.split('-')[0]]),
        `${rel} beak`,
      ).toBeGreaterThanOrEqual(6);
      expect(
        countNear(img, info.parts.wingbar!, colours[info.attributes.wingbar]),
        `${rel} wing bar`,
      ).toBeGreaterThanOrEqual(15);
    }
  });

  it('is loaded by loadDataset as the synthetic layout', async () => {
    const ds = await loadDataset(dirA, { valPerClass: 1, seed: 0 });
    expect(ds.layout).toBe('synthetic');
    expect(ds.classes).toEqual(manifest.classes.map((c) => c.name));
    expect([ds.splits.train.length, ds.splits.val.length, ds.splits.test.length]).toEqual([24, 6, 12]);
    for (const item of ds.splits.test) expect(manifest.images[item.id].label).toBe(item.label);
  });

  it('regenerates over its own output but refuses a foreign non-empty folder', async () => {
    const dir = await tempDir('synth-re');
    try {
      await generateSynthetic(dir, { classes: 3, trainPerClass: 2, testPerClass: 1, seed: 1 });
      const again = await generateSynthetic(dir, { classes: 2, trainPerClass: 1, testPerClass: 1, seed: 1 });
      expect((await listFiles(dir)).filter((f) => f.endsWith('.png'))).toHaveLength(4);
      expect(Object.keys(again.images)).toHaveLength(4);
      const foreign = await tempDir('synth-foreign');
      await writeText(join(foreign, 'mine.txt'), 'keep me');
      await expect(generateSynthetic(foreign, { classes: 2 })).rejects.toThrow(/not empty/);
      await cleanup(foreign);
    } finally {
      await cleanup(dir);
    }
  });
});

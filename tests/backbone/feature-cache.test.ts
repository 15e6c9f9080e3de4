import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractFeatureSets, extractFeatures } from '../../trainer/src/backbone/feature-cache.ts';
import { MIRRORED, ORIGINAL, viewSeed } from '../../trainer/src/backbone/feature-view.ts';
import { augmentImage } from '../../trainer/src/data/augment.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { loadOnnxBackbone } from '../../trainer/src/backbone/onnx-backbone.ts';
import type { PreprocessSpec } from '../../trainer/src/backbone/types.ts';
import { FakeBackbone, PRE, SIZE, createFakeBackbone } from './fake-backbone.ts';
import { decodeMany, toNHWC } from '../../trainer/src/data/decode.ts';
import type { DatasetItem } from '../../trainer/src/data/types.ts';
import { DATA_DIR, HAS_MOBILENET, MOBILENET_ONNX, NO_DATA_NOTE, cleanup, tempDir } from './helpers.ts';

let dir: string;
let items: DatasetItem[];
const BAD = 5;

beforeAll(async () => {
  dir = await tempDir('features');
  items = [];
  await mkdir(join(dir, 'img'), { recursive: true });
  for (let i = 0; i < 11; i++) {
    const path = join(dir, 'img', `${i}.png`);
    if (i === BAD) await writeFile(path, 'not an image');
    else {
      const px = Uint8Array.from({ length: 12 * 10 * 3 }, (_, j) => (j * (i + 3) * 7 + i * 31) % 256);
      await sharp(px, { raw: { width: 12, height: 10, channels: 3 } })
        .png()
        .toFile(path);
    }
    items.push({ id: `img${i}`, path, label: i % 3, box: i === 2 ? [1, 1, 9, 8] : undefined });
  }
});
afterAll(() => cleanup(dir));

/** Features computed directly, without the cache, for comparison. */
async function direct(list: DatasetItem[], flip: boolean): Promise<(Float32Array | null)[]> {
  const { images } = await decodeMany(list, SIZE);
  const bb = new FakeBackbone();
  return Promise.all(images.map(async (img) => (img ? bb.extract(toNHWC([img], PRE, flip), 1) : null)));
}

const opts = (cacheDir: string, extra: object = {}) => ({
  cacheDir,
  quiet: true,
  batchSize: 3,
  chunkSize: 4,
  ...extra,
});

describe('extractFeatures', () => {
  it('extracts, skips the bad image, then loads the same store from the cache', async () => {
    const cacheDir = join(dir, 'c1');
    const bb = new FakeBackbone();
    const first = await extractFeatures(bb, items, { flip: false, ...opts(cacheDir) });
    expect(first.cacheHit).toBe(false);
    expect(bb.seen).toBe(items.length - 1);
    expect(first.valid.filter((v) => !v)).toHaveLength(1);
    expect(first.valid[BAD]).toBe(false);
    expect(first.skipped).toEqual([expect.objectContaining({ path: items[BAD].path })]);
    expect(first.store.encoding).toBe('float16');
    const want = await direct(items, false);
    want.forEach((w, i) => {
      if (!w) return;
      const got = first.store.get(i);
      for (let j = 0; j < 12; j++) expect(got[j]).toBeCloseTo(w[j], 2);
    });
    // Only the final file remains: no chunk folder, no temp files.
    expect(await readdir(cacheDir)).toEqual([`${first.key}.feat`]);

    const bb2 = new FakeBackbone();
    const second = await extractFeatures(bb2, items, { flip: false, ...opts(cacheDir) });
    expect(second.cacheHit).toBe(true);
    expect(bb2.seen).toBe(0);
    expect(second.key).toBe(first.key);
    expect(second.valid).toEqual(first.valid);
    expect(second.skipped).toEqual(first.skipped);
    expect(
      Buffer.compare(
        Buffer.from(second.store.data.buffer, second.store.data.byteOffset, second.store.data.byteLength),
        Buffer.from(first.store.data.buffer, first.store.data.byteOffset, first.store.data.byteLength),
      ),
    ).toBe(0);
  });

  it('changes the key when the items, a file’s bytes, the flip or the backbone change', async () => {
    const cacheDir = join(dir, 'c2');
    const base = await extractFeatures(new FakeBackbone(), items, { flip: false, ...opts(cacheDir) });
    const fewer = await extractFeatures(new FakeBackbone(), items.slice(1), { flip: false, ...opts(cacheDir) });
    expect(fewer.cacheHit).toBe(false);
    expect(fewer.key).not.toBe(base.key);
    const reboxed = items.map((it, i) =>
      i === 3 ? { ...it, box: [0, 0, 5, 5] as [number, number, number, number] } : it,
    );
    expect((await extractFeatures(new FakeBackbone(), reboxed, { flip: false, ...opts(cacheDir) })).key).not.toBe(
      base.key,
    );
    const flipped = await extractFeatures(new FakeBackbone(), items, { flip: true, ...opts(cacheDir) });
    expect(flipped.key).not.toBe(base.key);
    expect(flipped.store.get(0)[0]).not.toBeCloseTo(base.store.get(0)[0], 3);
    expect(
      (await extractFeatures(new FakeBackbone('fake-v2'), items, { flip: false, ...opts(cacheDir) })).key,
    ).not.toBe(base.key);
    // A touched file (a copied dataset) keeps its cache; a file whose bytes change does not.
    await utimes(items[0].path, new Date(), new Date(Date.now() + 5000));
    const touched = await extractFeatures(new FakeBackbone(), items, { flip: false, ...opts(cacheDir) });
    expect(touched.cacheHit).toBe(true);
    expect(touched.key).toBe(base.key);
    const bytes = await readFile(items[0].path);
    await copyFile(items[1].path, items[0].path);
    const rewritten = await extractFeatures(new FakeBackbone(), items, { flip: false, ...opts(cacheDir) });
    await writeFile(items[0].path, bytes);
    expect(rewritten.cacheHit).toBe(false);
    expect(rewritten.key).not.toBe(base.key);
  });

  it('resumes from completed chunks after a crash without redoing them', async () => {
    const cacheDir = join(dir, 'c3');
    const crashing = new FakeBackbone();
    crashing.failAfter = 5; // chunk 0 (4 images) completes; the first batch of chunk 1 crashes
    await expect(extractFeatures(crashing, items, { flip: false, ...opts(cacheDir) })).rejects.toThrow(
      /simulated crash/,
    );
    const parts = (await readdir(cacheDir)).filter((n) => n.endsWith('.parts'));
    expect(parts).toHaveLength(1);
    expect((await readdir(join(cacheDir, parts[0]))).filter((n) => n.endsWith('.feat'))).toHaveLength(1);

    const healthy = new FakeBackbone();
    const resumed = await extractFeatures(healthy, items, { flip: false, ...opts(cacheDir) });
    expect(resumed.cacheHit).toBe(false);
    expect(resumed.resumed).toBe(4);
    expect(healthy.seen).toBe(items.length - 4 - 1); // the bad image is in the second chunk
    expect(resumed.valid[BAD]).toBe(false);
    expect(await readdir(cacheDir)).toEqual([`${resumed.key}.feat`]);

    const fresh = await extractFeatures(new FakeBackbone(), items, { flip: false, ...opts(join(dir, 'c3-fresh')) });
    expect(Buffer.compare(Buffer.from(resumed.store.data.buffer), Buffer.from(fresh.store.data.buffer))).toBe(0);
  });

  it('records bad images of restored chunks', async () => {
    const cacheDir = join(dir, 'c3b');
    const crashing = new FakeBackbone();
    crashing.failAfter = 9; // chunks 0 and 1 (with the bad image) complete
    await expect(extractFeatures(crashing, items, { flip: false, ...opts(cacheDir) })).rejects.toThrow();
    const r = await extractFeatures(new FakeBackbone(), items, { flip: false, ...opts(cacheDir) });
    expect(r.resumed).toBe(8);
    expect(r.valid[BAD]).toBe(false);
    expect(r.skipped).toEqual([expect.objectContaining({ path: items[BAD].path })]);
  });

  it('stores quantised backbones as exact uint8', async () => {
    const q = { scale: 0.01, zeroPoint: 100 };
    const r = await extractFeatures(new FakeBackbone('fake-q', q), items, { flip: false, ...opts(join(dir, 'c4')) });
    expect(r.store.encoding).toBe('uint8');
    expect(r.store.quantization).toEqual(q);
    expect(r.store.data.byteLength).toBe(items.length * 12);
    const want = await direct(items, false);
    const got = r.store.get(1);
    for (let j = 0; j < 12; j++)
      expect(got[j]).toBeCloseTo((Math.round(want[1]![j] / q.scale + q.zeroPoint) - q.zeroPoint) * q.scale, 6);
    const again = await extractFeatures(new FakeBackbone('fake-q', q), items, {
      flip: false,
      ...opts(join(dir, 'c4')),
    });
    expect(again.cacheHit).toBe(true);
    expect(again.store.quantization).toEqual(q);
    expect(Array.from(again.store.get(1))).toEqual(Array.from(got));
  });

  it('keeps float32 when asked', async () => {
    const r = await extractFeatures(new FakeBackbone(), items, {
      flip: true,
      floatEncoding: 'float32',
      ...opts(join(dir, 'c5')),
    });
    const want = await direct(items, true);
    expect(r.store.encoding).toBe('float32');
    expect(Array.from(r.store.get(3))).toEqual(Array.from(want[3]!));
  });
});

describe('extractFeatureSets', () => {
  it('makes original and flipped stores in one pass, sharing keys with extractFeatures', async () => {
    const cacheDir = join(dir, 'c6');
    const bb = new FakeBackbone();
    const [orig, flip] = await extractFeatureSets(bb, items, { views: [ORIGINAL, MIRRORED], ...opts(cacheDir) });
    expect(bb.seen).toBe(2 * (items.length - 1));
    const single = await extractFeatures(new FakeBackbone(), items, { flip: true, ...opts(cacheDir) });
    expect(single.cacheHit).toBe(true);
    expect(single.key).toBe(flip.key);
    const wantFlip = await direct(items, true);
    for (let j = 0; j < 12; j++) expect(flip.store.get(4)[j]).toBeCloseTo(wantFlip[4]![j], 2);
    expect(orig.key).not.toBe(flip.key);

    // One cached, one missing: only the missing one is computed.
    const bb2 = new FakeBackbone();
    const sets = await extractFeatureSets(bb2, items.slice(0, 6), { views: [ORIGINAL, MIRRORED], ...opts(cacheDir) });
    expect(sets.map((s) => s.cacheHit)).toEqual([false, false]);
    const bb3 = new FakeBackbone();
    const again = await extractFeatureSets(bb3, items.slice(0, 6), { views: [MIRRORED, ORIGINAL], ...opts(cacheDir) });
    expect(again.map((s) => s.cacheHit)).toEqual([true, true]);
    expect(bb3.seen).toBe(0);
  });

  it('extracts augmented copies: each image through its own fixed transform, keyed apart from the plain views', async () => {
    const cacheDir = join(dir, 'c8');
    const spec = { rotation: 15, shear: 10, skew: 0.2, cropScale: 0.8, probability: 1 };
    const views = [ORIGINAL, { flip: false, augment: { spec, seed: 1 } }, { flip: true, augment: { spec, seed: 2 } }];
    const sets = await extractFeatureSets(new FakeBackbone(), items, { views, ...opts(cacheDir) });
    expect(new Set(sets.map((s) => s.key)).size).toBe(3);
    expect(sets[1].valid).toEqual(sets[0].valid);
    // Independently: decode, draw item 4's transform from its id, warp, normalise, pool.
    const { images } = await decodeMany(items, SIZE);
    const bb = new FakeBackbone();
    for (const [v, flip] of [
      [1, false],
      [2, true],
    ] as const) {
      const seed = viewSeed(v, items[4].id);
      const warped = augmentImage(images[4]!, spec, new Rng(seed), flip);
      const want = await bb.extract(toNHWC([warped], PRE, false), 1);
      for (let j = 0; j < want.length; j++) expect(sets[v].store.get(4)[j]).toBeCloseTo(want[j], 2);
      expect(Array.from(sets[v].store.get(4))).not.toEqual(Array.from(sets[0].store.get(4)));
    }
    // The copy of an item does not depend on which other items are extracted with it.
    const again = await extractFeatureSets(new FakeBackbone(), items.slice(4, 7), {
      views: [views[1]],
      ...opts(join(dir, 'c9')),
    });
    expect(Array.from(again[0].store.get(0))).toEqual(Array.from(sets[1].store.get(4)));
    // A second run reads all three from the cache.
    const bb2 = new FakeBackbone();
    const cached = await extractFeatureSets(bb2, items, { views, ...opts(cacheDir) });
    expect(cached.map((s) => s.cacheHit)).toEqual([true, true, true]);
    expect(bb2.seen).toBe(0);
  });

  it('extracts noisy copies: the same fixed transform, then seeded input noise, keyed apart from the clean copy', async () => {
    const cacheDir = join(dir, 'c10');
    const spec = { rotation: 15, shear: 10, skew: 0.2, cropScale: 0.8, probability: 0 };
    const views = [
      { flip: false, augment: { spec, seed: 1 } },
      { flip: false, augment: { spec: { ...spec, noise: 0.2 }, seed: 1 } },
    ];
    const sets = await extractFeatureSets(new FakeBackbone(), items, { views, ...opts(cacheDir) });
    expect(sets[0].key).not.toBe(sets[1].key);
    const { images } = await decodeMany(items, SIZE);
    const rng = new Rng(viewSeed(1, items[2].id));
    const x = toNHWC([augmentImage(images[2]!, spec, rng, false)], PRE, false);
    for (let i = 0; i < x.length; i++) x[i] += Math.min(0.25, Math.max(-0.25, rng.normal() * 0.2));
    const want = await new FakeBackbone().extract(x, 1);
    for (let j = 0; j < want.length; j++) expect(sets[1].store.get(2)[j]).toBeCloseTo(want[j], 2);
    expect(Array.from(sets[1].store.get(2))).not.toEqual(Array.from(sets[0].store.get(2)));
  });

  it('handles an empty item list', async () => {
    const [r] = await extractFeatureSets(new FakeBackbone(), [], { views: [ORIGINAL], ...opts(join(dir, 'c7')) });
    expect(r.store.n).toBe(0);
    expect(r.valid).toEqual([]);
  });
});

const AUGMENTED = {
  flip: true,
  augment: { spec: { rotation: 10, shear: 5, skew: 0.1, cropScale: 0.9, probability: 1 }, seed: 3 },
};

describe('extraction on worker threads', () => {
  it('gives the same stores as the main thread, for float and quantised backbones', async () => {
    for (const quantization of [undefined, { scale: 0.02, zeroPoint: 50 }]) {
      const inThread = await extractFeatureSets(new FakeBackbone('pool', quantization), items, {
        views: [ORIGINAL, MIRRORED, AUGMENTED],
        workers: 0,
        ...opts(join(dir, 'p-main')),
      });
      const pooled = await extractFeatureSets(createFakeBackbone({ hash: 'pool', quantization, pooled: true }), items, {
        views: [ORIGINAL, MIRRORED, AUGMENTED],
        workers: 2,
        ...opts(join(dir, 'p-pool')),
      });
      pooled.forEach((p, f) => {
        expect(p.cacheHit).toBe(false);
        expect(p.key).toBe(inThread[f].key);
        expect(p.valid).toEqual(inThread[f].valid);
        expect(p.skipped).toEqual(inThread[f].skipped);
        const a = inThread[f].store.data;
        const b = p.store.data;
        expect(
          Buffer.compare(
            Buffer.from(a.buffer, a.byteOffset, a.byteLength),
            Buffer.from(b.buffer, b.byteOffset, b.byteLength),
          ),
        ).toBe(0);
      });
      expect((await readdir(join(dir, 'p-pool'))).filter((n) => !n.endsWith('.feat'))).toEqual([]);
    }
  });

  it('resumes after a worker crash', async () => {
    const cacheDir = join(dir, 'p-crash');
    const crashing = createFakeBackbone({ hash: 'pool-crash', failAfter: 5, pooled: true });
    await expect(extractFeatures(crashing, items, { flip: false, workers: 1, ...opts(cacheDir) })).rejects.toThrow(
      /simulated crash/,
    );
    const r = await extractFeatures(createFakeBackbone({ hash: 'pool-crash', pooled: true }), items, {
      flip: false,
      workers: 2,
      ...opts(cacheDir),
    });
    expect(r.resumed).toBe(4);
    expect(r.valid[BAD]).toBe(false);
    const fresh = await extractFeatures(new FakeBackbone('pool-crash'), items, {
      flip: false,
      workers: 0,
      ...opts(join(dir, 'p-crash-fresh')),
    });
    expect(Buffer.compare(Buffer.from(r.store.data.buffer), Buffer.from(fresh.store.data.buffer))).toBe(0);
  });

  it('refuses a worker copy whose hash differs', async () => {
    const bb = createFakeBackbone({ hash: 'one', pooled: true });
    (bb.recipe!.options as { hash: string }).hash = 'other';
    await expect(extractFeatures(bb, items, { flip: false, workers: 1, ...opts(join(dir, 'p-hash')) })).rejects.toThrow(
      /hash/,
    );
  });
});

describe('feature cache with the real int8 MobileNetV2', () => {
  it('extracts and reloads uint8 7x7x1280 maps of a few CUB images', async (ctx) => {
    const cub = join(DATA_DIR, 'cub200/train_cropped/001.Black_footed_Albatross');
    ctx.skip(!HAS_MOBILENET || !existsSync(cub), NO_DATA_NOTE);
    const names = (await readdir(cub)).sort().slice(0, 5);
    const real: DatasetItem[] = names.map((n, i) => ({
      id: n,
      path: join(cub, n),
      label: 0,
      box: i === 0 ? [10, 10, 100, 80] : undefined,
    }));
    const pre: PreprocessSpec = { size: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    const bb = await loadOnnxBackbone({ path: MOBILENET_ONNX, preprocess: pre });
    try {
      const cacheDir = join(dir, 'real');
      const [a, b] = await extractFeatureSets(bb, real, {
        views: [ORIGINAL, MIRRORED],
        cacheDir,
        quiet: true,
        batchSize: 2,
      });
      expect(a.store.encoding).toBe('uint8');
      expect(a.store.shape).toEqual([7, 7, 1280]);
      expect(a.valid.every((v) => v)).toBe(true);
      // Same as running the backbone directly on the decoded image.
      const { images } = await decodeMany(real.slice(1, 2), 224);
      const direct = await bb.extract(toNHWC([images[0]!], pre, true), 1);
      expect(Array.from(b.store.get(1))).toEqual(Array.from(direct));
      const again = await extractFeatures(bb, real, { flip: false, cacheDir, quiet: true });
      expect(again.cacheHit).toBe(true);
      expect(Array.from(again.store.get(4))).toEqual(Array.from(a.store.get(4)));
    } finally {
      await bb.dispose();
    }
  });
});

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractFeatures } from '../../trainer/src/backbone/feature-cache.ts';
import { loadOnnxBackbone } from '../../trainer/src/backbone/onnx-backbone.ts';
import type { PreprocessSpec } from '../../trainer/src/backbone/types.ts';
import type { DatasetItem } from '../../trainer/src/data/types.ts';
import { TINY_ONNX, tinyQLinearBackbone } from '../e2e/tiny-onnx-backbone.ts';
import { FakeBackbone } from './fake-backbone.ts';
import { cleanup, tempDir } from './helpers.ts';

const PRE: PreprocessSpec = { size: TINY_ONNX.side, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
/** The tiny network's last conv rounds its output to this grid (tiny-onnx-backbone.ts: conv3's y scale, zero point 0). */
const GRID = 0.03;

let dir: string;
let model: string;
const items: DatasetItem[] = [];

beforeAll(async () => {
  dir = await tempDir('feature-storage');
  model = join(dir, 'tiny.onnx');
  await writeFile(model, tinyQLinearBackbone(5));
  await mkdir(join(dir, 'img'));
  for (let i = 0; i < 5; i++) {
    const path = join(dir, 'img', `${i}.png`);
    const px = Uint8Array.from({ length: 40 * 36 * 3 }, (_, j) => (j * (i + 5) * 13 + i * 17) % 256);
    await sharp(px, { raw: { width: 40, height: 36, channels: 3 } })
      .png()
      .toFile(path);
    items.push({ id: `i${i}`, path, label: 0 });
  }
});
afterAll(() => cleanup(dir));

describe('uint8 storage of float features', () => {
  it('stores an int8 network’s float-compute features on its own 8-bit grid, within half a step', async () => {
    const bb = await loadOnnxBackbone({ path: model, preprocess: PRE, threads: 1, compute: 'float' });
    expect(bb.quantization).toBeUndefined();
    expect(bb.storageGrid?.scale).toBeCloseTo(GRID, 6);
    expect(bb.storageGrid?.zeroPoint).toBe(0);
    const opts = { flip: false, quiet: true, workers: 0 };
    const exact = await extractFeatures(bb, items, { ...opts, cacheDir: join(dir, 'f32'), floatEncoding: 'float32' });
    const small = await extractFeatures(bb, items, { ...opts, cacheDir: join(dir, 'u8'), floatEncoding: 'uint8' });
    expect(small.store.encoding).toBe('uint8');
    expect(small.key).not.toBe(exact.key);
    expect(small.store.data.byteLength * 4).toBe(exact.store.data.byteLength);
    let worst = 0;
    let rounded = 0;
    for (let i = 0; i < items.length; i++) {
      const a = exact.store.get(i);
      const b = small.store.get(i);
      a.forEach((v, j) => {
        worst = Math.max(worst, Math.abs(v - b[j]));
        if (v !== b[j]) rounded++;
      });
    }
    expect(worst).toBeLessThanOrEqual(GRID / 2 + 1e-6);
    expect(rounded).toBeGreaterThan(0);
    // Reloaded from the cache with its grid.
    const again = await extractFeatures(bb, items, { ...opts, cacheDir: join(dir, 'u8'), floatEncoding: 'uint8' });
    expect(again.cacheHit).toBe(true);
    expect(Array.from(again.store.get(2))).toEqual(Array.from(small.store.get(2)));
    await bb.dispose();
  });

  it('refuses uint8 storage for a backbone without a grid, naming the fix', async () => {
    await expect(
      extractFeatures(new FakeBackbone(), items, {
        flip: false,
        quiet: true,
        cacheDir: join(dir, 'fake'),
        floatEncoding: 'uint8',
      }),
    ).rejects.toThrow(/has none .*float16 instead \(featureCacheEncoding\)/);
  });
});

/**
 * Feature extraction on worker threads: every batch comes back once, and every worker releases its
 * backbone and exits by itself (native sessions torn down by Worker.terminate() can abort the process),
 * on success and when a batch fails.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { type PoolBatch, runInWorkers } from '../../trainer/src/backbone/feature-pool.ts';
import { ORIGINAL } from '../../trainer/src/backbone/feature-view.ts';
import type { DatasetItem } from '../../trainer/src/data/types.ts';
import { MARKER_SIZE, markerBackbone } from '../support/marker-backbone.ts';

describe('runInWorkers', () => {
  let dir: string;
  let items: DatasetItem[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'protoatlas-pool-'));
    // Image k is one flat colour: red k*20, green 100, blue 200.
    items = await Promise.all(
      Array.from({ length: 7 }, async (_, k) => {
        const path = join(dir, `img${k}.png`);
        const png = await sharp({
          create: { width: MARKER_SIZE, height: MARKER_SIZE, channels: 3, background: { r: k * 20, g: 100, b: 200 } },
        })
          .png()
          .toBuffer();
        await writeFile(path, png);
        return { id: `img${k}`, path, label: 0 };
      }),
    );
  });

  const batchesOf = (sizes: number[]): PoolBatch[] => {
    let at = 0;
    return sizes.map((n) => {
      const b = { items: items.slice(at, at + n), views: [ORIGINAL] };
      at += n;
      return b;
    });
  };

  it('returns every batch once, and each worker disposes of its backbone before it exits', async () => {
    const marker = join(dir, 'ok.marker');
    const backbone = markerBackbone({ marker });
    const got = new Map<number, Float32Array>();
    await runInWorkers(
      batchesOf([3, 2, 2]),
      { recipe: backbone.recipe!, hash: backbone.hash, workers: 2, quantized: false, decodeConcurrency: 2 },
      async (index, result) => {
        expect(got.has(index)).toBe(false);
        got.set(index, result.outputs[0] as Float32Array);
      },
    );
    expect([...got.keys()].sort()).toEqual([0, 1, 2]);
    // Batch 1 holds images 3 and 4: mean red 60/255 and 80/255, green 100/255, blue 200/255.
    const b1 = got.get(1)!;
    expect(Array.from(b1, (v) => Math.round(v * 255))).toEqual([60, 100, 200, 80, 100, 200]);
    expect(await readFile(marker, 'utf8')).toBe('disposed\ndisposed\n');
  });

  it('rejects with the failing batch, and still lets every worker dispose of its backbone', async () => {
    const marker = join(dir, 'fail.marker');
    const backbone = markerBackbone({ marker, failOnBatchOf: 3 });
    await expect(
      runInWorkers(
        batchesOf([3, 2, 2]),
        { recipe: backbone.recipe!, hash: backbone.hash, workers: 2, quantized: false, decodeConcurrency: 2 },
        async () => undefined,
      ),
    ).rejects.toThrow(/refused a batch of 3/);
    expect(await readFile(marker, 'utf8')).toBe('disposed\ndisposed\n');
  });

  it("refuses a worker whose backbone differs from the main thread's, and that worker releases it", async () => {
    const marker = join(dir, 'hash.marker');
    const backbone = markerBackbone({ marker });
    await expect(
      runInWorkers(
        batchesOf([3]),
        { recipe: backbone.recipe!, hash: 'another', workers: 1, quantized: false, decodeConcurrency: 2 },
        async () => undefined,
      ),
    ).rejects.toThrow(/worker backbone hash marker differs from the main thread's another/);
    expect(await readFile(marker, 'utf8')).toBe('disposed\n');
  });
});

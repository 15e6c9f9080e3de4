import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createSmallCnn } from '../../trainer/src/backbone/small-cnn.ts';
import { toNHWC } from '../../trainer/src/data/decode.ts';
import type { RgbImage } from '../../trainer/src/data/types.ts';
import { exportOnnx } from '../../trainer/src/export/export-onnx.ts';
import {
  configureOrtWeb,
  createWebSession,
  ortWebDistDir,
  runFloat,
  runOrtWeb,
} from '../../trainer/src/export/ort-web.ts';
import type { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { cleanup, tempDir } from '../backbone/helpers.ts';
import { headReference, maxAbsDiff, runOrt, toNchw, useCpuBackend, randomSmallCnnRun } from './helpers.ts';

beforeAll(useCpuBackend);

function images(n: number, size: number, seed: number): RgbImage[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => ({
    width: size,
    height: size,
    data: Uint8Array.from({ length: size * size * 3 }, () => rng.int(256)),
  }));
}

describe('onnxruntime-web (wasm) in Node', () => {
  it('finds its wasm binary next to the package and keeps one configuration per process', () => {
    expect(ortWebDistDir()).toMatch(/onnxruntime-web[/\\]dist$/);
    configureOrtWeb({ numThreads: 1 });
    expect(() => configureOrtWeb({ numThreads: 2 })).toThrow(/already configured/);
  });

  describe('a tiny exported small-CNN run round-trips with parity', () => {
    const size = 24;
    let dir = '';
    let head: ProtoHead;
    let cnn: ReturnType<typeof createSmallCnn>;

    beforeAll(async () => {
      dir = await tempDir('ort-web');
      const addOn = [
        { channels: 12, activation: 'relu' as const },
        { channels: 6, activation: 'l2norm' as const },
      ];
      ({ cnn, head } = await randomSmallCnnRun(dir, {
        size,
        channels: [4, 8],
        addOn,
        prototypesPerClass: 2,
        classes: ['a', 'b', 'c'],
        cnnSeed: 7,
        headSeed: 11,
      }));
    });

    afterAll(async () => {
      head.dispose();
      await cnn.dispose();
      await cleanup(dir);
    });

    it('gives the logits, similarities and distances of onnxruntime-node and of the trainer', async () => {
      const file = join(dir, 'model.onnx');
      await exportOnnx(dir, file);
      const bytes = new Uint8Array(await readFile(file));
      const n = 3;
      const imgs = images(n, size, 3);
      const x = toNchw(toNHWC(imgs, cnn.preprocess, false), n, size, size, 3);
      const dims = [n, 3, size, size];

      const web = await runOrtWeb(bytes, { image: { data: x, dims } });
      const node = await runOrt(bytes, { image: new ort.Tensor('float32', x, dims) });
      const f = tf.tidy(() => cnn.apply(tf.tensor4d(toNHWC(imgs, cnn.preprocess, false), [n, size, size, 3]), false));
      const [b, h, w, c] = f.shape;
      const ref = headReference(head, f.dataSync() as Float32Array, [b, h, w, c]);
      f.dispose();

      expect(web.logits.dims).toEqual([n, 3]);
      expect(web.distances.dims).toEqual([n, 6, 6, 6]);
      for (const k of ['logits', 'similarities', 'distances'] as const) {
        expect(maxAbsDiff(web[k].data, node[k].data as Float32Array)).toBeLessThan(1e-4);
        expect(maxAbsDiff(web[k].data, ref[k])).toBeLessThan(1e-4);
      }
    });

    it('keeps a session across runs and fetches named outputs only', async () => {
      const file = join(dir, 'model.onnx');
      const s = await createWebSession(new Uint8Array(await readFile(file)), { graphOptimizationLevel: 'basic' });
      try {
        const x = new Float32Array(3 * size * size).fill(0.25);
        const a = await runFloat(s, { image: { data: x, dims: [1, 3, size, size] } }, ['logits']);
        const b = await runFloat(s, { image: { data: x, dims: [1, 3, size, size] } }, ['logits']);
        expect(Object.keys(a)).toEqual(['logits']);
        expect(Array.from(a.logits.data)).toEqual(Array.from(b.logits.data));
      } finally {
        await s.release();
      }
    });
  });
});

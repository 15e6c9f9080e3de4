import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOnnxBackbone } from '../../trainer/src/backbone/onnx-backbone.ts';
import type { PreprocessSpec } from '../../trainer/src/backbone/types.ts';
import {
  HAS_MOBILENET,
  MOBILENET_ONNX,
  NO_DATA_NOTE,
  TINY_CONV,
  TINY_Q,
  cleanup,
  nchwToNhwc,
  tempDir,
  testValues,
  tinyConvRelu,
  tinyFloatModel,
  tinyQuantModel,
} from './helpers.ts';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('onnx');
  await writeFile(join(dir, 'float.onnx'), tinyFloatModel());
  await writeFile(join(dir, 'quant.onnx'), tinyQuantModel());
  await writeFile(join(dir, 'quant-int8.onnx'), tinyQuantModel(true));
});
afterAll(() => cleanup(dir));

const spec = (size: number): PreprocessSpec => ({ size, mean: [0, 0, 0], std: [1, 1, 1] });

describe('loadOnnxBackbone on tiny models', () => {
  it('extracts NHWC features of a float model tapped at the pool input', async () => {
    const { cIn, cOut, side } = TINY_CONV;
    const bb = await loadOnnxBackbone({
      path: join(dir, 'float.onnx'),
      tap: 'auto',
      preprocess: spec(side),
      threads: 1,
    });
    try {
      expect(bb.featureShape).toEqual([side, side, cOut]);
      expect(bb.quantization).toBeUndefined();
      expect(bb.extractQuantized).toBeUndefined();
      expect(bb.tapTensor).toBe('relu');
      const n = 3;
      const nchw = testValues(n * cIn * side * side);
      const f = await bb.extract(nchwToNhwc(nchw, n, cIn, side, side), n);
      const want = nchwToNhwc(tinyConvRelu(nchw, n), n, cOut, side, side);
      expect(f.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) expect(f[i]).toBeCloseTo(want[i], 5);
    } finally {
      await bb.dispose();
    }
  });

  it('hashes file bytes and tap: same tap same hash, other tap other hash', async () => {
    const p = join(dir, 'float.onnx');
    const a = await loadOnnxBackbone({ path: p, tap: 'auto', preprocess: spec(4), threads: 1 });
    const b = await loadOnnxBackbone({ path: p, tap: 'relu', preprocess: spec(4), threads: 1 });
    const c = await loadOnnxBackbone({ path: p, tap: 'conv', preprocess: spec(4), threads: 1 });
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(a.hash).toBe(b.hash);
    expect(a.hash).not.toBe(c.hash);
    await Promise.all([a.dispose(), b.dispose(), c.dispose()]);
  });

  for (const int8 of [false, true]) {
    it(`reports quantisation and raw ${int8 ? 'int8 (shifted to uint8)' : 'uint8'} features of a quantised model`, async () => {
      const { scale, zeroPoint, channels, side } = TINY_Q;
      const bb = await loadOnnxBackbone({
        path: join(dir, int8 ? 'quant-int8.onnx' : 'quant.onnx'),
        preprocess: spec(side),
        threads: 1,
      });
      try {
        expect(bb.featureShape).toEqual([side, side, channels]);
        expect(bb.quantization!.zeroPoint).toBe(zeroPoint);
        expect(bb.quantization!.scale).toBeCloseTo(scale, 7);
        const n = 2;
        const nchw = testValues(n * channels * side * side, 10);
        const x = nchwToNhwc(nchw, n, channels, side, side);
        const q = await bb.extractQuantized!(x, n);
        const wantQ = Array.from(
          nchwToNhwc(
            Array.from(nchw, (v) => Math.min(255, Math.max(0, Math.round(v / scale) + zeroPoint))),
            n,
            channels,
            side,
            side,
          ),
        );
        expect(Array.from(q)).toEqual(wantQ);
        const f = await bb.extract(x, n);
        for (let i = 0; i < f.length; i++)
          expect(f[i]).toBeCloseTo((q[i] - bb.quantization!.zeroPoint) * bb.quantization!.scale, 6);
      } finally {
        await bb.dispose();
      }
    });
  }

  it('says which file it could not read', async () => {
    await expect(loadOnnxBackbone({ path: join(dir, 'missing.onnx'), preprocess: spec(4) })).rejects.toThrow(
      /missing\.onnx/,
    );
  });
});

describe('loadOnnxBackbone on the real int8 MobileNetV2', () => {
  it('gives 7x7x1280 uint8 features equal to the dequantised floats', async (ctx) => {
    ctx.skip(!HAS_MOBILENET, NO_DATA_NOTE);
    const pre: PreprocessSpec = { size: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    const bb = await loadOnnxBackbone({ path: MOBILENET_ONNX, tap: 'auto', preprocess: pre });
    try {
      expect(bb.featureShape).toEqual([7, 7, 1280]);
      expect(bb.quantization!.scale).toBeCloseTo(6 / 255, 6);
      expect(bb.quantization!.zeroPoint).toBe(0);
      const n = 2;
      const x = testValues(n * 224 * 224 * 3, 1.5);
      const q = await bb.extractQuantized!(x, n);
      const f = await bb.extract(x, n);
      expect(q.length).toBe(n * 7 * 7 * 1280);
      let nonzero = 0;
      for (let i = 0; i < q.length; i++) {
        if (q[i] > 0) nonzero++;
        if (Math.abs(f[i] - q[i] * bb.quantization!.scale) > 1e-6) throw new Error(`float/uint8 mismatch at ${i}`);
      }
      expect(nonzero).toBeGreaterThan(q.length / 100);
    } finally {
      await bb.dispose();
    }
  });
});

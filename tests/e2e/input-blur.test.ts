/**
 * A frozen ONNX backbone with `backbone.inputBlur`: the features are those of the published
 * network on a blurred image, the exported model blurs the same way (it computes what the
 * trainer computes), and a backbone fine-tuned behind the blur leaves the blur as it was.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '@protoatlas/shared';
import { gaussianTaps } from '../../trainer/src/backbone/input-blur.ts';
import { loadOnnxBackbone } from '../../trainer/src/backbone/onnx-backbone.ts';
import { readBundle } from '../../trainer/src/bundle/read-bundle.ts';
import { decodeImage, toNHWC } from '../../trainer/src/data/decode.ts';
import { decodeModel, tensorValues } from '../../trainer/src/onnx/onnx-proto.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { maxAbsDiff } from '../export/helpers.ts';
import { TINY_ONNX, tinyOnnxBackboneConfig, tinyQLinearBackbone, tinyOnnxRunConfig } from './tiny-onnx-backbone.ts';
import { imagesUnder, tinySyntheticData } from './tiny-run.ts';
import { expectFp32ExportMatchesTrainer } from './export-parity.ts';

process.env.PROTOATLAS_QUIET = '1';

/** Zero-padded Gaussian blur of an NHWC image, each channel on its own (the reference). */
function blurNhwc(x: Float32Array, side: number, sigma: number): Float32Array {
  const taps = gaussianTaps(sigma);
  const r = (taps.length - 1) / 2;
  const y = new Float32Array(x.length);
  for (let i = 0; i < side; i++)
    for (let j = 0; j < side; j++)
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let a = -r; a <= r; a++)
          for (let b = -r; b <= r; b++) {
            const [u, v] = [i + a, j + b];
            if (u >= 0 && u < side && v >= 0 && v < side) acc += x[(u * side + v) * 3 + c] * taps[a + r] * taps[b + r];
          }
        y[(i * side + j) * 3 + c] = acc;
      }
  return y;
}

describe('input blur on a frozen ONNX backbone (tiny QLinearConv graph)', () => {
  let dir: string;
  let backbonePath: string;
  let bundle: string;
  let manifest: Manifest;
  let photos: string[];

  beforeAll(async () => {
    dir = await tinySyntheticData(4, 16, 4);
    backbonePath = join(dir, 'tiny-qlinear.onnx');
    await writeFile(backbonePath, tinyQLinearBackbone(5, 'image'));
    const config = tinyOnnxRunConfig(backbonePath, {
      backbone: { inputBlur: 1 },
      head: { prototypesPerClass: 2 },
      warmup: { epochs: 2, batchSize: 16 },
      lastLayer: { epochs: 1, batchSize: 32 },
      featureCacheDir: join(dir, 'cache'),
      featureCacheEncoding: 'float16',
    });
    const run = join(dir, 'run');
    await trainRun({ config, dataDir: join(dir, 'data'), outDir: run, resume: false, quiet: true });
    bundle = join(run, 'bundle');
    manifest = (await readBundle(bundle)).manifest;
    photos = await imagesUnder(join(dir, 'data'));
  }, 300_000);

  it('gives the published network’s features of the blurred image', async () => {
    const common = { ...tinyOnnxBackboneConfig(backbonePath), path: backbonePath };
    const plain = await loadOnnxBackbone(common);
    const blurred = await loadOnnxBackbone({ ...common, inputBlur: 1 });
    expect(blurred.hash).not.toBe(plain.hash);
    expect(blurred.description).toMatch(/input blur sigma 1/);
    const img = await decodeImage(photos[0], { size: TINY_ONNX.side });
    const x = toNHWC([img], plain.preprocess, false);
    const viaGraph = await blurred.extract(x, 1);
    const reference = await plain.extract(blurNhwc(x, TINY_ONNX.side, 1), 1);
    const unblurred = await plain.extract(x, 1);
    expect(maxAbsDiff(viaGraph, reference)).toBeLessThan(1e-4);
    expect(maxAbsDiff(viaGraph, unblurred)).toBeGreaterThan(1e-2);
    await Promise.all([plain.dispose(), blurred.dispose()]);
  });

  it('exports the blur: both deployed models carry its kernel, and the fp32 export computes what the trainer computes', async () => {
    const onnx = manifest.files.onnx!;
    for (const file of [onnx.fp32!, onnx.int8!]) {
      const model = decodeModel(new Uint8Array(await readFile(join(bundle, file.path))));
      const kernel = model.graph.initializers.find((t) => t.name.includes('blur_kernel'));
      expect(kernel?.dims).toEqual([3, 1, 5, 5]);
    }
    await expectFp32ExportMatchesTrainer(
      bundle,
      manifest,
      photos.filter((_, i) => i % 8 === 0),
    );
  }, 120_000);

  it('fine-tunes the network behind the blur: the blur stays fixed, and the fp32 export computes what the trainer computes', async () => {
    const config = tinyOnnxRunConfig(
      backbonePath,
      {
        backbone: { inputBlur: 1, trainable: true },
        head: { prototypesPerClass: 2 },
        warmup: { epochs: 1, batchSize: 16, microBatch: 8 },
        joint: { epochs: 1, batchSize: 16, microBatch: 8, lr: { features: 1e-2 } },
        lastLayer: { epochs: 1, batchSize: 32 },
        featureCacheDir: join(dir, 'cache'),
        featureCacheEncoding: 'float16',
      },
      'cub200-finetune',
    );
    const run = join(dir, 'tuned');
    await trainRun({ config, dataDir: join(dir, 'data'), outDir: run, resume: false, quiet: true });
    const tunedBundle = join(run, 'bundle');
    const tuned = (await readBundle(tunedBundle)).manifest;
    const taps = gaussianTaps(1);
    const want = taps.flatMap((a) => taps.map((b) => a * b));
    for (const file of [tuned.files.onnx!.fp32!, tuned.files.onnx!.int8!]) {
      const model = decodeModel(new Uint8Array(await readFile(join(tunedBundle, file.path))));
      const kernel = model.graph.initializers.find((t) => t.dims.join('x') === '3x1x5x5');
      expect(maxAbsDiff(tensorValues(kernel!).slice(0, 25), want)).toBeLessThan(1e-7);
    }
    await expectFp32ExportMatchesTrainer(
      tunedBundle,
      tuned,
      photos.filter((_, i) => i % 8 === 0),
    );
  }, 300_000);
});

/**
 * The CUB default's path on a tiny scale, without ../shared: a frozen int8 ONNX
 * backbone (QLinearConv graph from tiny-onnx-backbone.ts) run with compute
 * 'float', trained with the cub200 recipe, bundled; the deployed int8 model
 * (W8A32: int8 weights, float activations) must agree with the fp32 export and
 * with the trainer.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '@protoatlas/shared';
import { decodeModel, OnnxDataType } from '../../trainer/src/onnx/onnx-proto.ts';
import { readBundle } from '../../trainer/src/bundle/read-bundle.ts';
import { decodeImage } from '../../trainer/src/data/decode.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { maxAbsDiff } from '../export/helpers.ts';
import { TINY_ONNX, tinyQLinearBackbone, tinyOnnxRunConfig } from './tiny-onnx-backbone.ts';
import { imagesUnder, tinySyntheticData } from './tiny-run.ts';
import { expectFp32ExportMatchesTrainer } from './export-parity.ts';

process.env.PROTOATLAS_QUIET = '1';

const argmax = (a: ArrayLike<number>) => Array.from(a).reduce((best, v, i, arr) => (v > arr[best] ? i : best), 0);

describe('ONNX-backbone run (cub200 recipe on a tiny QLinearConv graph): deployed int8 model', () => {
  let dir: string;
  let bundle: string;
  let manifest: Manifest;
  let photos: string[];

  beforeAll(async () => {
    dir = await tinySyntheticData(4, 24, 8);
    const backbone = join(dir, 'tiny-qlinear.onnx');
    // Its input is named like the deployed model's own input ('image'): the export must move it aside.
    await writeFile(backbone, tinyQLinearBackbone(5, 'image'));
    const config = tinyOnnxRunConfig(backbone, {
      head: { prototypesPerClass: 2 },
      warmup: { epochs: 6, batchSize: 16 },
      lastLayer: { epochs: 3, batchSize: 32 },
      featureCacheDir: join(dir, 'cache'),
      // The tiny graph's output grid (0.03) is coarse for its small features; this test is about the
      // export, so the head trains on unrounded ones (uint8 storage: tests/backbone/feature-storage.test.ts).
      featureCacheEncoding: 'float16',
    });
    expect(config.backbone).toMatchObject({ kind: 'onnx', compute: 'float', trainable: false });
    const run = join(dir, 'run');
    await trainRun({ config, dataDir: join(dir, 'data'), outDir: run, resume: false, quiet: true });
    bundle = join(run, 'bundle');
    manifest = (await readBundle(bundle)).manifest;
    photos = await imagesUnder(join(dir, 'data'));
  }, 300_000);

  it('stores the backbone int8 and computes in float (W8A32), smaller than fp32', async () => {
    // A failed export leaves the bundle without models (a warning, quiet here): fail on that first.
    expect(manifest.files.onnx?.int8).toBeTruthy();
    const onnx = manifest.files.onnx!;
    expect(onnx.int8!.bytes).toBeLessThan(onnx.fp32!.bytes);
    const int8 = decodeModel(new Uint8Array(await readFile(join(bundle, onnx.int8!.path))));
    const ops = int8.graph.nodes.map((n) => n.opType);
    // No int8 activations: every conv runs in float on weights stored int8.
    expect(ops).not.toContain('QLinearConv');
    expect(ops.filter((o) => o === 'Conv').length).toBeGreaterThanOrEqual(3 + 2); // backbone + add-on layers
    const int8Weights = int8.graph.initializers.filter((t) => t.dataType === OnnxDataType.INT8);
    const wanted =
      TINY_ONNX.channels[0] * 3 * 9 + TINY_ONNX.channels[1] * 9 + TINY_ONNX.channels[1] * TINY_ONNX.channels[2];
    expect(int8Weights.reduce((s, t) => s + t.dims.reduce((a, b) => a * b, 1), 0)).toBeGreaterThanOrEqual(wanted);
  });

  it('agrees with the fp32 export on every image (top-1) and stays close in distances', async () => {
    const onnx = manifest.files.onnx!;
    const fp32 = await ort.InferenceSession.create(join(bundle, onnx.fp32!.path));
    const int8 = await ort.InferenceSession.create(join(bundle, onnx.int8!.path));
    const size = manifest.preprocessing.size;
    expect(photos.length).toBe(4 * 32);
    let agree = 0;
    let worstDistance = 0;
    const classes = new Set<number>();
    for (const photo of photos) {
      const img = await decodeImage(photo, { size });
      const feed = { image: new ort.Tensor('float32', Float32Array.from(img.data), [1, size, size, 3]) };
      const [a, b] = [await fp32.run(feed), await int8.run(feed)];
      const top = argmax(a.logits.data as Float32Array);
      if (top === argmax(b.logits.data as Float32Array)) agree++;
      classes.add(top);
      worstDistance = Math.max(
        worstDistance,
        maxAbsDiff(a.distances.data as Float32Array, b.distances.data as Float32Array),
      );
    }
    await Promise.all([fp32.release(), int8.release()]);
    // The model is not degenerate: it predicts more than one class.
    expect(classes.size).toBeGreaterThan(1);
    expect(agree / photos.length).toBeGreaterThanOrEqual(0.97);
    // Squared distances between unit-norm embeddings lie in [0, 4]; int8 add-on weights move them little.
    // (Similarities are not compared: log((d+1)/(d+1e-4)) magnifies any change near d = 0.)
    expect(worstDistance).toBeLessThan(0.05);
  }, 120_000);

  it('the fp32 export computes what the trainer computes', async () => {
    await expectFp32ExportMatchesTrainer(
      bundle,
      manifest,
      photos.filter((_, i) => i % 16 === 0),
    );
  }, 120_000);
});

/**
 * Partial fine-tuning on a tiny int8 ONNX graph: the layers after `backbone.trainFrom` train in the
 * joint stage (on two gradient threads) on cached maps of the frozen layers before it; the layers
 * before it keep their published weights; the exported model computes what the trainer computes.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '@protoatlas/shared';
import { importOnnxBackbone } from '../../trainer/src/backbone/onnx-import.ts';
import { readBundle } from '../../trainer/src/bundle/read-bundle.ts';
import { resolveConfig } from '../../trainer/src/config/presets.ts';
import { loadModel } from '../../trainer/src/model/model-file.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { maxAbsDiff } from '../export/helpers.ts';
import { TINY_ONNX, tinyQLinearBackbone } from './tiny-onnx-backbone.ts';
import { imagesUnder, tinySyntheticData } from './tiny-run.ts';
import { expectFp32ExportMatchesTrainer } from './export-parity.ts';

process.env.PROTOATLAS_QUIET = '1';

const PRE = { size: TINY_ONNX.side, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as {
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
};

describe('partial fine-tuning (backbone.trainFrom) on a tiny QLinearConv graph', () => {
  let dir: string;
  let backbone: string;
  let run: string;
  let manifest: Manifest;

  beforeAll(async () => {
    dir = await tinySyntheticData(4, 24, 8);
    backbone = join(dir, 'tiny-qlinear.onnx');
    await writeFile(backbone, tinyQLinearBackbone(5, 'image'));
    const config = resolveConfig('cub200', {
      backend: 'wasm',
      trainThreads: 2,
      data: { valPerClass: 3 },
      backbone: {
        kind: 'onnx',
        path: backbone,
        tap: 'auto',
        preprocess: PRE,
        compute: 'float',
        threads: 1,
        trainable: true,
        trainFrom: 'conv1',
      },
      head: {
        addOn: [
          { channels: 16, activation: 'relu' },
          { channels: 8, activation: 'l2norm' },
        ],
        prototypesPerClass: 2,
      },
      warmup: { epochs: 2, batchSize: 16, microBatch: 8 },
      joint: {
        epochs: 2,
        batchSize: 16,
        microBatch: 8,
        lr: { features: 1e-2, addOn: 1e-3, prototypes: 1e-3, lastLayer: 0 },
      },
      pushTune: { epochs: 1, batchSize: 16, microBatch: 8 },
      lastLayer: { epochs: 2, batchSize: 32 },
      prune: { mode: 'off' },
      bundle: { enabled: true, nearest: 2, partMetrics: false },
      featureCacheDir: join(dir, 'cache'),
    });
    run = join(dir, 'run');
    await trainRun({ config, dataDir: join(dir, 'data'), outDir: run, resume: false, quiet: true });
    manifest = (await readBundle(join(run, 'bundle'))).manifest;
  }, 300_000);

  it('tunes only the layers after trainFrom', async () => {
    const { backboneWeights, head } = await loadModel(run);
    head.dispose();
    const published = await importOnnxBackbone({ path: backbone, tap: 'auto', preprocess: PRE });
    // conv1 stays frozen: the checkpoint holds conv2_dw and conv3 only (kernel + bias each).
    expect([...backboneWeights.keys()].sort()).toEqual(['conv0.bias', 'conv0.kernel', 'conv1.bias', 'conv1.kernel']);
    const before = published.convsByNode;
    expect([...before.keys()]).toEqual(['conv1_node', 'conv2_dw_node', 'conv3_node']);
    const tunedKernel = backboneWeights.get('conv1.kernel')!.data; // the top's second conv: conv3
    const publishedKernel = before.get('conv3_node')!.kernel.dataSync();
    expect(tunedKernel.length).toBe(publishedKernel.length);
    expect(maxAbsDiff(tunedKernel, publishedKernel as Float32Array)).toBeGreaterThan(1e-3);
    await published.dispose();
  });

  it('the fp32 export (the whole network, tuned top included) computes what the trainer computes', async () => {
    const bundle = join(run, 'bundle');
    expect(manifest.files.onnx?.fp32).toBeTruthy();
    const photos = (await imagesUnder(join(dir, 'data'))).filter((_, i) => i % 16 === 0);
    expect(photos.length).toBeGreaterThan(4);
    await expectFp32ExportMatchesTrainer(bundle, manifest, photos);
  }, 120_000);

  it('a run that names trainFrom without trainable is refused with the fix', async () => {
    const config = resolveConfig('cub200', {
      backbone: { kind: 'onnx', path: backbone, tap: 'auto', preprocess: PRE, trainFrom: 'conv1' },
      featureCacheDir: join(dir, 'cache'),
    });
    await expect(
      trainRun({ config, dataDir: join(dir, 'data'), outDir: join(dir, 'refused'), resume: false, quiet: true }),
    ).rejects.toThrow(/trainFrom conv1 .* needs trainable: true/);
  });
});

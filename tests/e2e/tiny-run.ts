import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthetic } from '../../trainer/src/data/synthetic.ts';
import { resolveConfig } from '../../trainer/src/config/presets.ts';
import type { TrainConfig } from '../../trainer/src/config/config.ts';

/** A synthetic dataset small enough for a test run in seconds. */
export async function tinySyntheticData(classes = 4, trainPerClass = 24, testPerClass = 8): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'protoatlas-e2e-'));
  await generateSynthetic(join(dir, 'data'), { classes, trainPerClass, testPerClass, seed: 11 });
  return dir;
}

/** Every image file under a dataset folder (all splits), sorted. */
export async function imagesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && /\.(png|jpe?g)$/i.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** The demo preset shrunk: a tiny CNN, few prototypes, few epochs. */
export function tinyConfig(cacheDir: string, override: object = {}): TrainConfig {
  return resolveConfig('demo', {
    backend: 'wasm',
    data: { valPerClass: 3 },
    backbone: { kind: 'small-cnn', inputSize: 56, channels: [8, 16, 16], convsPerStage: 2 },
    head: {
      addOn: [
        { channels: 16, activation: 'relu' },
        { channels: 8, activation: 'sigmoid' },
      ],
      prototypesPerClass: 2,
    },
    warmup: { epochs: 1, batchSize: 16 },
    joint: { epochs: 3, batchSize: 16, inputDropout: 0.1 },
    lastLayer: { epochs: 3, batchSize: 32 },
    featureCacheDir: cacheDir,
    ...override,
  });
}

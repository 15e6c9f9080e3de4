/**
 * A tiny trained run WITH its bundle and dataset, for the prototype-debugging
 * tests (edits need the run, not just a bundle). Built once (~10 s) into
 * .cache/edit-run-fixture and reused. Edits write their new runs elsewhere; only
 * the similarity cache beside the run's features grows.
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { sourceKey } from '../support/source-key.ts';
import { cachedBuild } from './cached-build.ts';
import { tinyConfig, tinySyntheticData } from './tiny-run.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const CACHE = join(ROOT, '.cache', 'edit-run-fixture');
/** The code that builds the fixture: a change to any of it rebuilds the fixture. */
const SOURCES = ['trainer/src', 'shared/src', 'tests/e2e/tiny-run.ts', 'tests/e2e/edit-fixture.ts'];

export interface EditFixture {
  run: string;
  data: string;
}

async function ready(key: string): Promise<EditFixture | null> {
  try {
    const meta = JSON.parse(await readFile(join(CACHE, 'fixture.json'), 'utf8'));
    if (meta.sourceKey !== key) return null;
    await stat(join(CACHE, 'run', 'bundle', 'manifest.json'));
    return { run: join(CACHE, 'run'), data: join(CACHE, 'data') };
  } catch {
    return null;
  }
}

export async function editFixture(): Promise<EditFixture> {
  const key = await sourceKey(ROOT, SOURCES);
  return cachedBuild(
    CACHE,
    () => ready(key),
    async () => {
      process.env.PROTOATLAS_QUIET = '1';
      await rm(CACHE, { recursive: true, force: true });
      await mkdir(CACHE, { recursive: true });
      const tmp = await tinySyntheticData(3, 20, 4);
      await rename(join(tmp, 'data'), join(CACHE, 'data'));
      const config = tinyConfig(join(CACHE, 'features'), {
        backbone: { kind: 'small-cnn', inputSize: 56, channels: [16, 32, 32], convsPerStage: 1 },
        head: {
          addOn: [
            { channels: 16, activation: 'relu' },
            { channels: 8, activation: 'l2norm' },
          ],
          prototypesPerClass: 3,
        },
        joint: { epochs: 6, batchSize: 16 },
        prune: { mode: 'off', k: 6, threshold: 3 },
        lastLayer: { epochs: 4, batchSize: 32, lr: 1e-2, l1: 1e-4, selectBest: true },
        bundle: { enabled: true, nearest: 3, partMetrics: true },
      });
      await trainRun({ config, dataDir: join(CACHE, 'data'), outDir: join(CACHE, 'run'), resume: false, quiet: true });
      await writeFile(join(CACHE, 'fixture.json'), JSON.stringify({ sourceKey: key }));
      await rm(tmp, { recursive: true, force: true });
      return (await ready(key))!;
    },
  );
}

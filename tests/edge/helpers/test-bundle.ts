/**
 * One tiny, really trained model bundle for the edge tests, built once and
 * cached in .cache/edge-test-bundle/<key>: the key hashes the trainer and shared
 * sources, so a code change rebuilds it. Parallel test files share the build
 * through a lock directory.
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourceKey } from '../../support/source-key.ts';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const CACHE = join(ROOT, '.cache', 'edge-test-bundle');
const SOURCES = ['trainer/src', 'shared/src', 'tests/edge/helpers/test-bundle.ts', 'tests/e2e/tiny-run.ts'];

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Test images of each class (PNG bytes of synthetic birds the model never trained on). */
export interface TestBundle {
  dir: string;
  /** Raw RGB test images with their true class, from the same synthetic generator. */
  dataDir: string;
}

async function build(target: string): Promise<void> {
  process.env.PROTOATLAS_QUIET = '1';
  const { tinyConfig, tinySyntheticData } = await import('../../e2e/tiny-run.ts');
  const { trainRun } = await import('../../../trainer/src/run/train-run.ts');
  const work = await tinySyntheticData(4, 60, 4);
  const run = join(work, 'run');
  const config = tinyConfig(join(work, 'cache'), {
    prune: { mode: 'off', k: 6, threshold: 3 },
    bundle: { enabled: true, nearest: 2, partMetrics: false },
    // The demo's recipe shrunk: unit-norm latent and one conv per stage learn in seconds.
    backbone: { kind: 'small-cnn', inputSize: 56, channels: [32, 64, 64], convsPerStage: 1 },
    head: {
      addOn: [
        { channels: 32, activation: 'relu' },
        { channels: 16, activation: 'l2norm' },
      ],
      prototypesPerClass: 2,
    },
    joint: { epochs: 20, batchSize: 32 },
    lastLayer: { epochs: 5, batchSize: 32, lr: 1e-2, l1: 1e-4, selectBest: true },
  });
  await trainRun({ config, dataDir: join(work, 'data'), outDir: run, resume: false, quiet: true });
  const tmp = `${target}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await rename(join(run, 'bundle'), join(tmp, 'bundle'));
  await rename(join(work, 'data'), join(tmp, 'data'));
  await rm(work, { recursive: true, force: true });
  await rename(tmp, target);
}

/** The cached tiny bundle, building it first if needed (about a minute on a clean clone). */
export async function ensureTestBundle(): Promise<TestBundle> {
  const target = join(CACHE, await sourceKey(ROOT, SOURCES));
  const result = { dir: join(target, 'bundle'), dataDir: join(target, 'data') };
  if (await exists(join(target, 'bundle', 'manifest.json'))) return result;
  await mkdir(CACHE, { recursive: true });
  const lock = `${target}.lock`;
  const deadline = Date.now() + 600_000;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch {
      // Another test file is building it: wait, unless its builder died.
      const owner = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => '0'));
      if (owner && !isAlive(owner)) await rm(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
      await new Promise((r) => setTimeout(r, 500));
      if (await exists(join(target, 'bundle', 'manifest.json'))) return result;
    }
  }
  try {
    await writeFile(join(lock, 'pid'), String(process.pid));
    if (!(await exists(join(target, 'bundle', 'manifest.json')))) await build(target);
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
  return result;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

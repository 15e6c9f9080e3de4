import { join } from 'node:path';
import { MANIFEST_FILE } from '@protoatlas/shared';
import { exists, runPaths } from '../core/run-dir.ts';
import { sha256File } from '../core/sha256.ts';
import { readBundle } from './read-bundle.ts';

/** True when <run>/bundle is a valid bundle of exactly the run's current model weights. */
export async function bundleIsCurrent(run: string, bundleDir = runPaths(run).bundle): Promise<boolean> {
  if (!(await exists(join(bundleDir, MANIFEST_FILE)))) return false;
  try {
    const { manifest } = await readBundle(bundleDir);
    const [a, b] = await Promise.all([
      sha256File(join(runPaths(run).model, 'weights.bin')),
      sha256File(join(bundleDir, manifest.files.trainerModel.weights)),
    ]);
    return a === b;
  } catch {
    return false;
  }
}

import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (trainer/src/core -> ../../..). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');

/** Reference data folder: $PROTOPNET_DATA, else ../shared/data beside the checkout. */
export function referenceDataDir(): string {
  return process.env.PROTOPNET_DATA ? resolve(process.env.PROTOPNET_DATA) : resolve(REPO_ROOT, '../shared/data');
}

/** Resolve a weights path from a config: absolute stays, relative is under the reference data folder. */
export function resolveDataPath(p: string): string {
  return isAbsolute(p) ? p : resolve(referenceDataDir(), p);
}

/** Resolve a repo-relative path (cache dirs in configs). */
export function resolveRepoPath(p: string): string {
  return isAbsolute(p) ? p : resolve(REPO_ROOT, p);
}

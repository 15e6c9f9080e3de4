/**
 * Cache key of a feature extraction: everything that changes the stored
 * values. Files are identified by path, size and mtime (not content) so that
 * keying 12k images takes milliseconds, not a re-read of the dataset.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { DatasetItem } from '../data/types.ts';
import type { FeatureEncoding } from './feature-store.ts';
import type { PreprocessSpec } from './types.ts';

const KEY_VERSION = 'protoatlas-features/1';

export interface FeatureKeyInput {
  backboneHash: string;
  preprocess: PreprocessSpec;
  flip: boolean;
  encoding: FeatureEncoding;
  items: readonly DatasetItem[];
}

export async function featureCacheKey(input: FeatureKeyInput): Promise<string> {
  const stats = await statAll(input.items.map((i) => i.path));
  const h = createHash('sha256');
  h.update(
    `${KEY_VERSION}\n${input.backboneHash}\n${JSON.stringify(input.preprocess)}\nflip=${input.flip}\n${input.encoding}\n${input.items.length}\n`,
  );
  input.items.forEach((item, i) => {
    h.update(`${item.id}\t${item.path}\t${item.box ? item.box.join(',') : ''}\t${stats[i]}\n`);
  });
  return h.digest('hex');
}

/** "size:mtimeMs" per path ("missing" when stat fails: the decode step reports it). */
async function statAll(paths: readonly string[]): Promise<string[]> {
  const out = new Array<string>(paths.length);
  const width = 64;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const i = next++;
      try {
        const s = await stat(paths[i]);
        out[i] = `${s.size}:${s.mtimeMs}`;
      } catch {
        out[i] = 'missing';
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, paths.length) }, worker));
  return out;
}

/**
 * Cache key of a feature extraction: everything that changes the stored
 * values. Files are identified by the hash of their bytes, not their mtime: a
 * copied or re-extracted dataset keeps its cache, and hashing CUB's images
 * costs a fraction of a second against minutes of extraction.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { DatasetItem } from '../data/types.ts';
import type { FeatureEncoding } from './feature-store.ts';
import type { FeatureView } from './feature-view.ts';
import type { PreprocessSpec } from './types.ts';

const KEY_VERSION = 'protoatlas-features/2';

export interface FeatureKeyBase {
  backboneHash: string;
  preprocess: PreprocessSpec;
  encoding: FeatureEncoding;
  items: readonly DatasetItem[];
}

export interface FeatureKeyInput extends FeatureKeyBase {
  flip: boolean;
  /** Augmented copies hash their transform's spec and seed; plain views keep the key they always had. */
  augment?: FeatureView['augment'];
}

export async function featureCacheKey(input: FeatureKeyInput): Promise<string> {
  const [key] = await featureCacheKeys(input, [{ flip: input.flip, augment: input.augment }]);
  return key;
}

/** One key per view of the same items, reading each file once. */
export async function featureCacheKeys(input: FeatureKeyBase, views: readonly FeatureView[]): Promise<string[]> {
  const digests = await hashAll(input.items.map((i) => i.path));
  return views.map((view) => {
    const h = createHash('sha256');
    h.update(
      `${KEY_VERSION}\n${input.backboneHash}\n${JSON.stringify(input.preprocess)}\nflip=${view.flip}\n${input.encoding}\n${input.items.length}\n`,
    );
    if (view.augment) h.update(`augment=${JSON.stringify(view.augment)}\n`);
    input.items.forEach((item, i) => {
      h.update(`${item.id}\t${item.path}\t${item.box ? item.box.join(',') : ''}\t${digests[i]}\n`);
    });
    return h.digest('hex');
  });
}

/** sha256 of each file's bytes ("missing" when it cannot be read: the decode step reports it). */
async function hashAll(paths: readonly string[]): Promise<string[]> {
  const out = new Array<string>(paths.length);
  const width = 16;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const i = next++;
      try {
        out[i] = createHash('sha256')
          .update(await readFile(paths[i]))
          .digest('hex');
      } catch {
        out[i] = 'missing';
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, paths.length) }, worker));
  return out;
}

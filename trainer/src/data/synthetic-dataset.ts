import { join } from 'node:path';
import { loadClassFolders, type SplitDir } from './class-folders.ts';
import { DatasetError } from './errors.ts';
import { isDirectory } from './fs-probe.ts';
import { SYNTHETIC_MANIFEST, readSyntheticManifest } from './synthetic-manifest.ts';
import type { Dataset } from './types.ts';

/** Load a folder written by generateSynthetic (train/ and test/ class folders + synthetic.json). */
export async function loadSynthetic(root: string): Promise<Dataset> {
  const manifest = await readSyntheticManifest(root);
  const splitDirs: SplitDir[] = [{ split: 'train', dir: join(root, 'train') }];
  if (await isDirectory(join(root, 'test'))) splitDirs.push({ split: 'test', dir: join(root, 'test') });
  const ds = await loadClassFolders(root, splitDirs, 'synthetic');
  const expected = manifest.classes.map((c) => c.name);
  if (ds.classes.join('\n') !== expected.join('\n')) {
    throw new DatasetError(
      `class folders (${ds.classes.length}) do not match the ${expected.length} classes of the manifest`,
      {
        file: join(root, SYNTHETIC_MANIFEST),
        fix: 'regenerate the synthetic dataset into an empty folder',
      },
    );
  }
  return ds;
}

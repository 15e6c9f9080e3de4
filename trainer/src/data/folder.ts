import { join } from 'node:path';
import { loadClassFolders, type SplitDir } from './class-folders.ts';
import { isDirectory } from './fs-probe.ts';
import type { Dataset, SplitName } from './types.ts';

/**
 * Load a generic one-folder-per-class dataset. With a `train/` subfolder, `train/`,
 * `test/` and `val/` are the splits (each holding class folders); otherwise the class
 * folders sit in `root` and everything is train. Non-image files go to `skipped`.
 */
export async function loadFolder(root: string, layout = 'folder'): Promise<Dataset> {
  return loadClassFolders(root, await folderSplits(root), layout);
}

/** The split folders of a generic layout. */
export async function folderSplits(root: string): Promise<SplitDir[]> {
  if (!(await isDirectory(join(root, 'train')))) return [{ split: 'train', dir: root }];
  const out: SplitDir[] = [];
  for (const split of ['train', 'val', 'test'] as SplitName[]) {
    const dir = join(root, split);
    if (await isDirectory(dir)) out.push({ split, dir });
  }
  return out;
}

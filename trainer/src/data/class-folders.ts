import { join, relative, sep } from 'node:path';
import { DatasetError } from './errors.ts';
import { listImages, listSubdirs } from './image-files.ts';
import type { Dataset, DatasetItem, SkippedFile, SplitName } from './types.ts';

export interface SplitDir {
  split: SplitName;
  dir: string;
}

/**
 * Build a Dataset from split folders each holding one subfolder per class. The first
 * split (train) defines the classes, sorted by folder name; other splits may only use
 * those names. An empty class folder in the first split is an error. Item ids are
 * paths relative to `root` with '/' separators.
 */
export async function loadClassFolders(root: string, splitDirs: SplitDir[], layout: string): Promise<Dataset> {
  const skipped: SkippedFile[] = [];
  const splits: Record<SplitName, DatasetItem[]> = { train: [], val: [], test: [], metrics: [] };
  const [first, ...rest] = splitDirs;
  const classes = await listSubdirs(first.dir);
  if (classes.length === 0) {
    throw new DatasetError('no class folders found', {
      file: first.dir,
      fix: 'put the images of each class in their own subfolder (e.g. 001.Black_footed_Albatross/*.jpg)',
    });
  }
  const labelOf = new Map(classes.map((c, i) => [c, i]));
  for (const { split, dir } of [first, ...rest]) {
    for (const name of await listSubdirs(dir)) {
      const label = labelOf.get(name);
      const classDir = join(dir, name);
      if (label === undefined) {
        throw new DatasetError(`class folder "${name}" does not exist in ${first.dir}`, {
          file: classDir,
          fix: `every ${split} class must also be a class of the ${first.split} split; rename or remove the folder`,
        });
      }
      const paths = await listImages(classDir, skipped);
      if (paths.length === 0 && split === first.split) {
        throw new DatasetError('class folder holds no images', {
          file: classDir,
          fix: 'add images (.jpg/.png...) to it or delete the folder',
        });
      }
      for (const path of paths) splits[split].push({ id: relative(root, path).split(sep).join('/'), path, label });
    }
  }
  return { layout, root, classes, splits, skipped };
}

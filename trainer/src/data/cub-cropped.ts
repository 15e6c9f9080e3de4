import { basename, join } from 'node:path';
import { loadClassFolders, type SplitDir } from './class-folders.ts';
import { DatasetError } from './errors.ts';
import { isDirectory, isFile } from './fs-probe.ts';
import { indexById, readTable } from './metadata-table.ts';
import type { Dataset } from './types.ts';

/**
 * Load the pre-cropped CUB layout: `train_cropped/NNN.Name/*.jpg` and optionally
 * `test_cropped/...` (every image already cut to its bird's box). Classes are the
 * train folder names sorted. When `meta/images.txt` is present, items take their
 * CUB image id (matched by file name), so ids agree with the official layout's.
 */
export async function loadCubCropped(root: string): Promise<Dataset> {
  const train = join(root, 'train_cropped');
  if (!(await isDirectory(train))) {
    throw new DatasetError('no train_cropped/ folder', {
      file: root,
      fix: 'point at the folder that holds train_cropped/',
    });
  }
  const splitDirs: SplitDir[] = [{ split: 'train', dir: train }];
  const test = join(root, 'test_cropped');
  if (await isDirectory(test)) splitDirs.push({ split: 'test', dir: test });
  const ds = await loadClassFolders(root, splitDirs, 'cub-cropped');

  const imagesTxt = join(root, 'meta', 'images.txt');
  if (await isFile(imagesTxt)) {
    const idByName = await cubIdsByFileName(imagesTxt);
    for (const items of Object.values(ds.splits)) {
      for (const item of items) {
        const id = idByName.get(basename(item.path));
        if (id !== undefined) item.id = id;
      }
    }
  }
  return ds;
}

/** CUB image id by image file name; names listed twice are left out (ambiguous). */
async function cubIdsByFileName(imagesTxt: string): Promise<Map<string, string>> {
  const rows = indexById(imagesTxt, await readTable(imagesTxt, 2, true), 'image id');
  const out = new Map<string, string>();
  const repeated = new Set<string>();
  for (const [id, row] of rows) {
    const name = basename(row.fields[1]);
    if (out.has(name)) repeated.add(name);
    out.set(name, String(id));
  }
  for (const name of repeated) out.delete(name);
  return out;
}

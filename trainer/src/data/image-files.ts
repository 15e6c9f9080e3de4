import { readdir, stat } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { extname, join } from 'node:path';
import type { SkippedFile } from './types.ts';

/** Extensions sharp can decode and that image datasets actually use. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
]);

export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

/** Code-point order, so listings sort the same under every locale. */
export function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A directory, or a symbolic link to one (datasets are often linked in, not copied). */
async function isDir(dir: string, e: Dirent): Promise<boolean> {
  if (e.isDirectory()) return true;
  if (!e.isSymbolicLink()) return false;
  return stat(join(dir, e.name)).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** Names of the visible subdirectories of `dir` (links to directories included), sorted. */
export async function listSubdirs(dir: string): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
  const flags = await Promise.all(entries.map((e) => isDir(dir, e)));
  return entries
    .filter((_, i) => flags[i])
    .map((e) => e.name)
    .sort(byCodePoint);
}

/**
 * Absolute paths of the image files under `dir` (recursively), sorted. Other files
 * are appended to `skipped`; hidden files (.DS_Store...) are ignored silently.
 */
export async function listImages(dir: string, skipped: SkippedFile[]): Promise<string[]> {
  const out: string[] = [];
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => byCodePoint(a.name, b.name));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const path = join(dir, e.name);
    if (await isDir(dir, e)) out.push(...(await listImages(path, skipped)));
    else if (!isImageFile(e.name))
      skipped.push({ path, reason: `not an image file extension (${[...IMAGE_EXTENSIONS].join(' ')})` });
    else out.push(path);
  }
  return out;
}

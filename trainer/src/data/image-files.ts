import { readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { SkippedFile } from './types.ts';

/** Extensions sharp can decode and that image datasets actually use. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif']);

export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

/** Code-point order, so listings sort the same under every locale. */
export function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Names of the visible subdirectories of `dir`, sorted. */
export async function listSubdirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
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
    if (e.isDirectory()) out.push(...(await listImages(path, skipped)));
    else if (!isImageFile(e.name)) skipped.push({ path, reason: `not an image file extension (${[...IMAGE_EXTENSIONS].join(' ')})` });
    else out.push(path);
  }
  return out;
}

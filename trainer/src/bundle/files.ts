/** Bundle file helpers: the manifest's record of a file, and bounded parallel work. */
import { copyFile, link, mkdir, readdir, stat } from 'node:fs/promises';
import { sha256File } from '../core/sha256.ts';
import { join, relative } from 'node:path';

export async function fileRecord(root: string, rel: string): Promise<{ path: string; bytes: number; sha256: string }> {
  const abs = join(root, rel);
  return { path: rel, bytes: (await stat(abs)).size, sha256: await sha256File(abs) };
}

/** Run `fn` over items with at most `limit` in flight (sharp work runs on libuv's pool). */
export async function mapLimit<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Give `dst` the files of `src` as hard links (a copy where the file system
 * cannot link, e.g. across devices): a bundle reusing its parent's pictures
 * then costs no bytes. Safe because bundles are never changed in place (a
 * rebuild writes a new directory). Returns the bytes of the files.
 */
export async function linkTree(src: string, dst: string): Promise<number> {
  let bytes = 0;
  await mkdir(dst, { recursive: true });
  const entries = await readdir(src, { recursive: true, withFileTypes: true });
  for (const e of entries)
    if (e.isDirectory()) await mkdir(join(dst, relative(src, join(e.parentPath, e.name))), { recursive: true });
  await mapLimit(
    entries.filter((e) => e.isFile()),
    16,
    async (e) => {
      const from = join(e.parentPath, e.name);
      const to = join(dst, relative(src, from));
      try {
        await link(from, to);
      } catch {
        await copyFile(from, to);
      }
      bytes += (await stat(to)).size;
    },
  );
  return bytes;
}

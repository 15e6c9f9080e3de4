/** Bundle file helpers: the manifest's record of a file, and bounded parallel work. */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from '../core/sha256.ts';

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

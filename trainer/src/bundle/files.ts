import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { syncDirectory, syncTree } from '../io/atomic.ts';
import { sha256File } from '../io/sha256.ts';
import { exists } from '../run/run-dir.ts';

export async function fileRecord(root: string, rel: string): Promise<{ path: string; bytes: number; sha256: string }> {
  const abs = join(root, rel);
  return { path: rel, bytes: (await stat(abs)).size, sha256: await sha256File(abs) };
}

/**
 * Build a directory atomically: everything is written into a temporary sibling,
 * which replaces `out` only when `build` succeeds. A failed or interrupted build
 * leaves the previous bundle untouched; the new tree is flushed to disk before
 * it takes the final name, and the parent directory after.
 */
export async function writeDirectoryAtomic(out: string, build: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  await syncTree(tmp);
  const old = join(dirname(out), `.${basename(out)}.old-${process.pid}`);
  const hadOld = await exists(out);
  if (hadOld) await rename(out, old);
  await rename(tmp, out);
  await syncDirectory(dirname(out));
  if (hadOld) await rm(old, { recursive: true, force: true });
}

/** Run `fn` over items with at most `limit` in flight (sharp work runs on libuv's pool). */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
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

/**
 * A test fixture built once into a cache directory and reused by later runs; a
 * lock directory keeps parallel test files from building it twice, and a lock
 * older than 5 minutes (left by a killed run) is taken over.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function cachedBuild<T>(
  cache: string,
  ready: () => Promise<T | null>,
  build: () => Promise<T>,
): Promise<T> {
  const lock = `${cache}.lock`;
  await mkdir(dirname(cache), { recursive: true });
  for (;;) {
    const r = await ready();
    if (r) return r;
    try {
      await mkdir(lock);
      break;
    } catch {
      const s = await stat(lock).catch(() => null);
      if (s && Date.now() - s.mtimeMs > 300_000) await rm(lock, { recursive: true, force: true });
      await new Promise((res) => setTimeout(res, 1000));
    }
  }
  try {
    return (await ready()) ?? (await build());
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/**
 * A short hash of source files and folders, for test fixtures cached under
 * .cache/: a fixture keyed by it is rebuilt whenever the code that built it changes.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';

async function listFiles(path: string): Promise<string[]> {
  const s = await stat(path);
  if (!s.isDirectory()) return [path];
  const out: string[] = [];
  for (const e of await readdir(path, { withFileTypes: true })) out.push(...(await listFiles(join(path, e.name))));
  return out;
}

/** sha256 (16 hex digits) over the paths and contents of every file under `sources` (relative to `root`). */
export async function sourceKey(root: string, sources: string[]): Promise<string> {
  const h = createHash('sha256');
  const files = (await Promise.all(sources.map((s) => listFiles(join(root, s))))).flat().sort();
  for (const f of files)
    h.update(relative(root, f))
      .update('\0')
      .update(await readFile(f))
      .update('\0');
  return h.digest('hex').slice(0, 16);
}

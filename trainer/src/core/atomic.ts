/**
 * Durable atomic writes. A file is written under a temporary sibling name,
 * flushed to disk, renamed over the final name, and the directory is flushed
 * too: after a crash or power loss a reader finds the old file or the new one,
 * whole, never an empty or torn file under the final name.
 */
import { randomBytes } from 'node:crypto';
import { access, type FileHandle, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A unique temporary name next to `path` (same directory, so the rename cannot cross file systems). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Flush a directory's entries (a rename is only durable once its directory is).
 * Platforms that cannot open a directory for syncing (Windows) skip it.
 */
export async function syncDirectory(dir: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(dir, 'r');
  } catch (e) {
    if (isUnsupported(e)) return;
    throw e;
  }
  try {
    await fh.sync();
  } catch (e) {
    if (!isUnsupported(e)) throw e;
  } finally {
    await fh.close();
  }
}

function isUnsupported(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EISDIR' || code === 'EPERM' || code === 'EINVAL' || code === 'ENOTSUP' || code === 'EACCES';
}

/** Flush a finished file's data to disk. */
export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Make a finished temporary file the final one: flush it, rename it over
 * `path`, flush the directory. The temporary file is removed on failure.
 */
export async function commitTempFile(tmp: string, path: string): Promise<void> {
  try {
    await syncFile(tmp);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDirectory(dirname(path));
}

/**
 * Write a file so that readers see either the old or the complete new content,
 * never a torn one, even after a power loss. `data` may be several chunks,
 * written one after another.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  try {
    const fh = await open(tmp, 'w');
    try {
      for (const chunk of chunks) await writeAll(fh, chunk);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDirectory(dirname(path));
}

/** Largest single write; fs calls are limited to 2 GiB (feature stores can be larger). */
const IO_CHUNK = 1 << 30;

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let done = 0; done < chunk.byteLength; ) {
    const { bytesWritten } = await fh.write(chunk, done, Math.min(IO_CHUNK, chunk.byteLength - done));
    done += bytesWritten;
  }
}

/** Flush every file and directory under `dir` (a tree built in a temporary place, before it is renamed). */
export async function syncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) await syncTree(p);
    else if (entry.isFile()) await syncFile(p);
  }
  await syncDirectory(dir);
}

/**
 * Build a directory atomically: everything is written into a temporary sibling,
 * which replaces `out` only when `build` succeeds. A failed or interrupted build
 * leaves the previous directory untouched; the new tree is flushed to disk
 * before it takes the final name, and the parent directory after. The swap is
 * two renames: a writer killed between them leaves the old tree as a hidden
 * sibling, which the next build puts back first.
 */
export async function writeDirectoryAtomic(out: string, build: (tmp: string) => Promise<void>): Promise<void> {
  const parent = dirname(out);
  await mkdir(parent, { recursive: true });
  await restoreInterruptedSwap(out);
  const tmp = join(parent, `.${basename(out)}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
    await syncTree(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const old = join(parent, `.${basename(out)}.old-${process.pid}`);
  const hadOld = await pathExists(out);
  if (hadOld) await rename(out, old);
  await rename(tmp, out);
  await syncDirectory(parent);
  if (hadOld) await rm(old, { recursive: true, force: true });
}

/** The hidden copy a killed swap left (`.<name>.old-<pid>`), put back when `out` itself is missing. */
export async function restoreInterruptedSwap(out: string): Promise<boolean> {
  if (await pathExists(out)) return false;
  const prefix = `.${basename(out)}.old-`;
  const stray = (await readdir(dirname(out)).catch(() => [] as string[])).filter((n) => n.startsWith(prefix)).sort();
  if (!stray.length) return false;
  await rename(join(dirname(out), stray[stray.length - 1]), out);
  await syncDirectory(dirname(out));
  return true;
}

async function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

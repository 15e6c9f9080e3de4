import { spawn } from 'node:child_process';
import { access, mkdtemp, open, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { restoreInterruptedSwap, writeDirectoryAtomic, writeFileAtomic } from '../../trainer/src/core/atomic.ts';
import { loadTensorFile } from '../../trainer/src/core/tensor-file.ts';
import { VALUES } from './helpers/kill-writer.ts';

const WRITER = fileURLToPath(new URL('./helpers/kill-writer.ts', import.meta.url));

/**
 * Start the writer, wait until it has finished `writes` writes, let it run `ms` more (into the next write),
 * then SIGKILL it. Counting writes, rather than waiting a fixed time, puts the kill in either version's write
 * however fast the machine writes.
 */
async function killWriterAfter(mode: 'file' | 'dir', path: string, writes: number, ms: number): Promise<void> {
  const child = spawn(process.execPath, [WRITER, mode, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(`wrote ${writes}\n`)) resolve();
    });
    child.on('exit', (code) => reject(new Error(`writer exited (${code}) before write ${writes}: ${stderr}`)));
  });
  await new Promise((r) => setTimeout(r, ms));
  child.kill('SIGKILL');
  await exited;
}

/** A tensor file the writer left must be one of its two versions, whole. */
async function expectWholeVersion(path: string): Promise<number> {
  const file = await loadTensorFile<{ version: number }>(path);
  const version = file.meta.version;
  expect([0, 1]).toContain(version);
  const w = file.tensors.get('w')!.data;
  expect(w.length).toBe(VALUES + version * 1024);
  expect(w.every((v) => v === version + 1)).toBe(true);
  return version;
}

describe('atomic writes under kill', () => {
  // Random kill points; the seed is printed so a failure can be replayed.
  const seed = 1 + (Date.now() % 99_999);
  let s = seed;
  const next = (n: number) => (s = (s * 16807) % 2147483647) % n;

  it(`a checkpoint writer killed at random points leaves the old or the new file, whole (seed ${seed})`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-kill-'));
    const path = join(dir, 'last.ckpt');
    const seen = new Set<number>();
    const temps = async () => (await readdir(dir)).filter((n) => n.startsWith('.last.ckpt.tmp-')).length;
    // Twelve rounds, then more (up to 40) until a kill has landed inside a write: on a fast disk a
    // random kill often falls between writes, which tests nothing about a torn write.
    for (let round = 0; round < 12 || (round < 52 && (await temps()) === 0); round++) {
      await killWriterAfter('file', path, 1 + (round % 2) + 2 * next(2), next(40));
      seen.add(await expectWholeVersion(path));
    }
    // The kills found both versions: they did not always land between the same two writes.
    expect(seen.size).toBe(2);
    // Killed writers leave at most their temporary files behind, never anything under the final name;
    // that some did shows kills landed inside writes, not only between them.
    const names = await readdir(dir);
    expect(names.filter((n) => !n.startsWith('.last.ckpt.tmp-'))).toEqual(['last.ckpt']);
    expect(await temps()).toBeGreaterThan(0);
  });

  it(`a bundle-directory writer killed at random points leaves the old or new tree, whole (seed ${seed})`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-kill-'));
    const out = join(dir, 'bundle');
    for (let round = 0; round < 8; round++) {
      await killWriterAfter('dir', out, 1 + next(3), next(40));
      // A kill between the swap's two renames leaves the old tree hidden; the next writer puts it back.
      await restoreInterruptedSwap(out);
      const version = await expectWholeVersion(join(out, 'weights.bin'));
      expect(JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'))).toEqual({ version });
    }
  });
});

describe('atomic writes are durable', () => {
  afterEach(() => vi.restoreAllMocks());

  it('flushes the file before the rename and the directory after', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-sync-'));
    // FileHandle is not exported; its prototype is reached through an open handle.
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const synced: boolean[] = [];
    const target = join(dir, 'a.json');
    const orig = proto.sync;
    vi.spyOn(proto, 'sync').mockImplementation(async function (this: unknown) {
      // Whether the final name exists tells which side of the rename the flush is on.
      synced.push(
        await access(target).then(
          () => true,
          () => false,
        ),
      );
      return orig.call(this);
    });
    await writeFileAtomic(target, '{"a":1}');
    expect(synced).toEqual([false, true]);
    expect(await readFile(target, 'utf8')).toBe('{"a":1}');
  });

  it('a directory build flushes every file of the new tree before it takes the name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-sync-'));
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const spy = vi.spyOn(proto, 'sync');
    await writeDirectoryAtomic(join(dir, 'out'), async (tmp) => {
      await writeFileAtomic(join(tmp, 'sub', 'x.bin'), new Uint8Array([1, 2, 3]));
      spy.mockClear();
    });
    // x.bin, sub/, the tree's root, then the parent after the rename.
    expect(spy).toHaveBeenCalledTimes(4);
    expect(Array.from(await readFile(join(dir, 'out', 'sub', 'x.bin')))).toEqual([1, 2, 3]);
  });
});

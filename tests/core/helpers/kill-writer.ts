/**
 * A writer for the kill tests, run as a child process: rewrites one target
 * forever, alternating two versions, until it is killed. Usage:
 *   node kill-writer.ts file <path> | dir <path>
 * Each version's content says which version it is, so the reader can tell a
 * whole file from a torn one. Prints "wrote <n>" after each complete write.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDirectoryAtomic, writeFileAtomic } from '../../../trainer/src/core/atomic.ts';
import { encodeTensorFile, saveTensorFile } from '../../../trainer/src/core/tensor-file.ts';

export const VALUES = 1 << 20;

export function versionTensor(version: number): Float32Array {
  return new Float32Array(VALUES + version * 1024).fill(version + 1);
}

async function main(): Promise<void> {
  const [mode, path] = process.argv.slice(2);
  const tensors = (version: number) =>
    new Map([['w', { shape: [VALUES + version * 1024], data: versionTensor(version) }]]);
  // Encoded once, so that the loop's time goes to the writes themselves (what saveTensorFile does after
  // encoding) and a kill lands inside one even when a loaded CPU makes encoding slow.
  const encoded = [0, 1].map((version) => encodeTensorFile({ version }, tensors(version)));
  for (let i = 0; ; i++) {
    const version = i % 2;
    const t = tensors(version);
    if (mode === 'file') {
      await writeFileAtomic(path, encoded[version]);
    } else {
      await writeDirectoryAtomic(path, async (tmp) => {
        await saveTensorFile(join(tmp, 'weights.bin'), { version }, t);
        await writeFile(join(tmp, 'manifest.json'), JSON.stringify({ version }));
      });
    }
    process.stdout.write(`wrote ${i + 1}\n`);
  }
}

if (import.meta.main) await main();

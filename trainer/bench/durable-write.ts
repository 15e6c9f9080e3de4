/**
 * What durability costs: saving a checkpoint-sized tensor file with the
 * durable atomic write (temp file, fsync, rename, directory fsync) beside a
 * plain writeFile of the same bytes, and decoding it back. Prints the median of
 * several runs per size.
 *
 *   node trainer/bench/durable-write.ts [dir=os.tmpdir()] [sizesMB=1,30,100]
 *
 * Run it on the disk that holds runs/: fsync costs what that device says.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeTensorFile, encodeTensorFile, saveTensorFile } from '../src/core/tensor-file.ts';
import { answerHelp } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/durable-write.ts [dir=os.tmpdir()] [sizesMB=1,30,100]

Durable atomic tensor-file saves beside a plain writeFile of the same bytes, median of 5 per size.`,
);

const [dirArg, sizesArg] = process.argv.slice(2);
const dir = await mkdtemp(join(dirArg ?? tmpdir(), 'protoatlas-durable-'));
const sizes = (sizesArg ?? '1,30,100').split(',').map(Number);
const REPEATS = 5;

async function median(fn: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[REPEATS >> 1];
}

console.log(`directory ${dir}, median of ${REPEATS}`);
console.log('MB      durable save ms   plain writeFile ms   encode ms   decode ms');
for (const mb of sizes) {
  const n = Math.round((mb * 2 ** 20) / 4);
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const tensors = new Map([['w', { shape: [n], data }]]);
  const meta = { stage: 'joint', epoch: 1 };
  const path = join(dir, `ck-${mb}.ckpt`);
  const durable = await median(() => saveTensorFile(path, meta, tensors));
  const bytes = encodeTensorFile(meta, tensors);
  const plain = await median(() => writeFile(join(dir, `plain-${mb}.bin`), bytes));
  const encode = await median(async () => void encodeTensorFile(meta, tensors));
  const raw = new Uint8Array(await readFile(path));
  const decode = await median(async () => void decodeTensorFile(raw));
  const f = (x: number) => x.toFixed(1).padStart(8);
  console.log(`${String(mb).padEnd(8)}${f(durable)}          ${f(plain)}            ${f(encode)}    ${f(decode)}`);
}
await rm(dir, { recursive: true, force: true });

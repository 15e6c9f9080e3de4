/**
 * Per-request peak memory of POST /classify on Node: each photo of the photo
 * benchmark is classified once in a fresh process, after the model and every
 * decoder are warmed on 500x375 photos, and the process's resident-set high
 * water mark (getrusage maxRSS) is read before and after. The difference is
 * what that one request added at its peak: the body, every decoder's wasm
 * memory growth, the pixel copies and the garbage not yet collected.
 *
 *   PROTOATLAS_BUNDLE=runs/demo/bundle node edge/bench/request-memory.ts [--repeat 3] [--base <dir>]
 * --base <dir>: measure that checkout's edge/src instead (as in photos.ts, e.g.
 * `git archive main edge/src | tar -x -C <dir>` with <dir> inside this checkout).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { DEFAULT_CONFIG } from '../src/config.ts';
import { benchBundle } from './bench-bundle.ts';
import { benchPhotos } from './photos.ts';
import { answerHelp } from '../scripts/usage.ts';

answerHelp(
  import.meta,
  `usage: PROTOATLAS_BUNDLE=<bundle> node_modules/.bin/node edge/bench/request-memory.ts [--repeat 3] [--base <dir>]

Per-request peak memory of POST /classify on Node, one fresh process per photo (Linux only).`,
);

interface Measured {
  /** Peak RSS during the request minus RSS just before it (bytes). */
  peak: number;
  /** RSS after the request and a full GC, minus RSS before it. */
  retained: number;
  status: number;
}

const MB = (b: number) => (b / 1048576).toFixed(1);

/** VmRSS and VmHWM of this process, bytes. */
function rss(): { now: number; peak: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string) => Number(status.match(new RegExp(`${key}:\\s+(\\d+) kB`))?.[1] ?? Number.NaN) * 1024;
  return { now: kb('VmRSS'), peak: kb('VmHWM') };
}

/** In the child: warm up, then one request with the photo file. */
async function child(entry: string, file: string, type: string, warm: string[]): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run the child with --expose-gc');
  const { createNodeApp } = (await import(entry)) as typeof import('../src/node.ts');
  const { dir } = await benchBundle();
  // No time budget: a loaded machine must not turn a slow request into a 503.
  const app = createNodeApp(dir, { ...DEFAULT_CONFIG, maxBodyBytes: 64 * 1024 * 1024, requestBudgetMs: 600_000 });
  const post = async (bytes: Uint8Array, t: string) => {
    const res = await app.fetch(
      new Request('http://bench/classify', {
        method: 'POST',
        body: bytes as Uint8Array<ArrayBuffer>,
        headers: { 'content-type': t },
      }),
    );
    await res.arrayBuffer();
    return res.status;
  };
  for (const w of warm) {
    const [path, t] = w.split('|');
    const s = await post(new Uint8Array(await readFile(path)), t);
    if (s !== 200) throw new Error(`warm-up ${path}: HTTP ${s}`);
  }
  const bytes = new Uint8Array(await readFile(file));
  gc();
  gc();
  // Writing 5 resets the high-water mark to the current RSS.
  writeFileSync('/proc/self/clear_refs', '5');
  const before = rss().now;
  const status = await post(bytes, type);
  const peak = rss().peak;
  gc();
  gc();
  const out: Measured = { peak: peak - before, retained: rss().now - before, status };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { repeat: { type: 'string' }, base: { type: 'string' } } });
  const repeat = Number(values.repeat ?? 3);
  const base = values.base ? resolve(process.env.INIT_CWD ?? process.cwd(), values.base) : null;
  const entry = base ? join(base, 'edge/src/node.ts') : new URL('../src/node.ts', import.meta.url).pathname;
  const { dir, manifest } = await benchBundle();
  const picture = manifest.prototypes.find((p) => p.files)?.files?.source;
  const source = picture ? join(dir, picture) : null;
  const photos = await benchPhotos(source);
  const tmp = await mkdtemp(join(tmpdir(), 'protoatlas-mem-'));
  const small = photos[0];
  const smallBase = sharp(small.bytes);
  const warmFiles: Array<[string, Uint8Array, string]> = [
    ['warm.jpg', small.bytes, 'image/jpeg'],
    ['warm.png', new Uint8Array(await smallBase.clone().png().toBuffer()), 'image/png'],
    ['warm.webp', new Uint8Array(await smallBase.clone().webp({ quality: 85 }).toBuffer()), 'image/webp'],
  ];
  const warm: string[] = [];
  for (const [name, bytes, type] of warmFiles) {
    await writeFile(join(tmp, name), bytes);
    warm.push(`${join(tmp, name)}|${type}`);
  }
  console.log(`bundle ${dir}; one request per fresh process after warm-up, ${repeat} processes per photo`);
  console.log(`code: ${entry}`);
  console.log(
    `${'photo'.padEnd(24)}${'MB'.padStart(8)}${'peak added (MB)'.padStart(24)}${'retained after GC (MB)'.padStart(26)}`,
  );
  for (const [i, photo] of photos.entries()) {
    const file = join(tmp, `photo-${i}`);
    await writeFile(file, photo.bytes);
    const runs: Measured[] = [];
    for (let r = 0; r < repeat; r++) {
      const args = ['--expose-gc', import.meta.filename, '--child', entry, file, photo.type, ...warm];
      const p = spawnSync(process.execPath, args, { encoding: 'utf8', env: process.env, maxBuffer: 1 << 20 });
      const line = p.stdout.trim().split('\n').pop() ?? '';
      if (p.status !== 0 || !line.startsWith('{')) throw new Error(`${photo.name}: child failed\n${p.stderr}`);
      const m = JSON.parse(line) as Measured;
      if (m.status !== 200) throw new Error(`${photo.name}: HTTP ${m.status}`);
      runs.push(m);
    }
    const peaks = runs.map((m) => MB(m.peak)).join(' ');
    const kept = runs.map((m) => MB(m.retained)).join(' ');
    console.log(
      `${photo.name.padEnd(24)}${MB(photo.bytes.length).padStart(8)}${peaks.padStart(24)}${kept.padStart(26)}`,
    );
  }
}

if (process.argv[2] === '--child') {
  const [entry, file, type, ...warm] = process.argv.slice(3);
  await child(entry, file, type, warm);
} else if (import.meta.main) {
  await main();
}

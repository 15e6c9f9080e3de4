/**
 * Isolate memory of the edge under workerd: starts `wrangler dev` with the
 * inspector, classifies a photo N times at concurrency C, and samples the V8
 * heap (DevTools protocol), onnxruntime's wasm memory and the JPEG decoder's
 * and WebP decoders' peak wasm memory (/healthz) before, after warm-up and
 * after the load, and the workerd process's peak resident set during the
 * concurrent load (an upper bound on the isolate, which it contains). Workers
 * limit an isolate to 128 MB. <photo> is a file, or
 * `12mp`, `12mp-progressive`, `12mp-png` or `4k-webp` for the photo
 * benchmark's pictures (made with sharp; the body limit is raised for the PNG).
 *
 *   PROTOATLAS_BUNDLE=runs/demo/bundle node_modules/.bin/node edge/bench/isolate-memory.ts \\
         [requests=2000] [concurrency=8] <photo>
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { join } from 'node:path';
import { benchBundle } from './bench-bundle.ts';
import { Inspector } from './inspector.ts';
import { benchPhotos } from './photos.ts';
import { answerHelp } from '../scripts/usage.ts';

answerHelp(
  import.meta,
  `usage: PROTOATLAS_BUNDLE=<bundle> node_modules/.bin/node edge/bench/isolate-memory.ts \\
         [requests=2000] [concurrency=8] <photo>

Isolate memory of the edge under workerd while classifying <photo> (a file, or 12mp / 12mp-progressive).`,
);

const [nArg, cArg, photoArg] = process.argv.slice(2);
const N = Number(nArg ?? 2000);
const C = Number(cArg ?? 8);
if (!process.env.PROTOATLAS_BUNDLE || !photoArg) {
  console.error('usage: PROTOATLAS_BUNDLE=<bundle> node edge/bench/isolate-memory.ts [requests] [concurrency] <photo>');
  process.exit(2);
}
async function generated(name: string): Promise<Uint8Array> {
  const { dir, manifest } = await benchBundle();
  const picture = manifest.prototypes.find((p) => p.files)?.files?.source;
  const photos = await benchPhotos(picture ? join(dir, picture) : null);
  return photos.find((p) => p.name === name)!.bytes;
}
const GENERATED: Record<string, string> = {
  '12mp': '12 MP JPEG',
  '12mp-progressive': '12 MP JPEG progressive',
  '12mp-png': '12 MP PNG',
  '4k-webp': '4K WebP',
};
const photo = GENERATED[photoArg] ? await generated(GENERATED[photoArg]) : await readFile(resolve(photoArg));
console.log(`photo: ${photoArg} (${(photo.length / 1048576).toFixed(2)} MB)`);
/** The workerd process under `pid` (wrangler runs it as a child of its own children). */
function workerdUnder(pid: number): number | null {
  const parent = new Map<number, number>();
  const name = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      name.set(Number(d), stat.slice(stat.indexOf('(') + 1, close));
      parent.set(Number(d), Number(stat.slice(close + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  for (const [p, n] of name) {
    if (n !== 'workerd') continue;
    for (let q = parent.get(p); q; q = parent.get(q)) if (q === pid) return p;
  }
  return null;
}

/** Resident set of a process now and its high-water mark since the last reset (bytes). */
function rss(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(status.match(new RegExp(`${key}:\\s+(\\d+) kB`))?.[1] ?? Number.NaN) * 1024;
  return { now: kb('VmRSS'), peak: kb('VmHWM') };
}

const port = 8795;
const inspectorPort = 9235;
const dev = spawn(
  process.execPath,
  ['edge/scripts/wrangler.ts', 'dev', '--port', String(port), '--inspector-port', String(inspectorPort)],
  {
    // The 12 MP PNG is over the default body limit; a loaded machine must not turn slow requests into 503s.
    env: { PROTOATLAS_MAX_BODY_BYTES: String(64 << 20), PROTOATLAS_REQUEST_BUDGET_MS: '600000', ...process.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  },
);
const base = `http://127.0.0.1:${port}`;
try {
  for (let i = 0; ; i++) {
    if (i > 240) throw new Error('wrangler dev did not start');
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      // starting
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  const inspector = await Inspector.open(inspectorPort);
  const sample = async (label: string) => {
    await inspector.send('HeapProfiler.collectGarbage').catch(() => undefined);
    const heap = await inspector.send<{ usedSize: number; totalSize: number }>('Runtime.getHeapUsage');
    const health = (await (await fetch(`${base}/healthz`)).json()) as {
      wasmMemoryBytes: number | null;
      jpegDecoderPeakBytes?: number | null;
      webpDecoderPeakBytes?: number | null;
    };
    const mb = (b: number | null | undefined) => (b == null ? 'n/a' : `${(b / 1048576).toFixed(1)} MB`);
    // The decoder's peak, not its current size: it may have been dropped since (memory freed at GC).
    const decoders = (health.jpegDecoderPeakBytes ?? 0) + (health.webpDecoderPeakBytes ?? 0);
    const total = heap.totalSize + (health.wasmMemoryBytes ?? 0) + decoders;
    console.log(
      `${label.padEnd(22)} JS heap used ${mb(heap.usedSize)} (allocated ${mb(heap.totalSize)}), ort wasm memory ${mb(health.wasmMemoryBytes)}, ` +
        `JPEG decoder peak ${mb(health.jpegDecoderPeakBytes)}, WebP decoder peak ${mb(health.webpDecoderPeakBytes)}, ` +
        `isolate ≤ ${mb(total)}`,
    );
  };
  const classify = async () => {
    const r = await fetch(`${base}/classify?top=3&evidence=3`, {
      method: 'POST',
      body: photo as Uint8Array<ArrayBuffer>,
      headers: { 'content-type': 'application/octet-stream' },
    });
    if (r.status !== 200) throw new Error(`classify answered ${r.status}: ${await r.text()}`);
    await r.arrayBuffer();
  };
  await sample('idle');
  for (let i = 0; i < 20; i++) await classify();
  await sample('after 20 requests');
  // The whole workerd process (this one isolate, the runtime, its buffers): Linux's high-water mark
  // of its resident set over the concurrent load, reset first (writing 5 to clear_refs).
  const workerd = dev.pid ? workerdUnder(dev.pid) : null;
  let rssBefore: number | null = null;
  if (workerd) {
    writeFileSync(`/proc/${workerd}/clear_refs`, '5');
    rssBefore = rss(workerd).now;
  }
  // Four rounds: steady state shows as flat samples.
  let errors = 0;
  const t0 = performance.now();
  for (let round = 1; round <= 4; round++) {
    let done = 0;
    const n = Math.ceil(N / 4);
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (done < n) {
          done++;
          await classify().catch(() => errors++);
        }
      }),
    );
    await sample(`after ${round * n} more`);
  }
  const secs = (performance.now() - t0) / 1000;
  console.log(`${N} requests at concurrency ${C}: ${errors} errors, ${(N / secs).toFixed(1)} req/s`);
  if (workerd && rssBefore !== null) {
    const { peak } = rss(workerd);
    const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
    console.log(`workerd process RSS: ${mb(rssBefore)} before the load, peak ${mb(peak)} during it`);
  } else console.log('workerd process not found: no RSS figure');
  inspector.close();
} finally {
  dev.kill('SIGTERM');
}

/**
 * Isolate memory of the edge under workerd: starts `wrangler dev` with the
 * inspector, classifies a photo N times at concurrency C, and samples the V8
 * heap (DevTools protocol) and onnxruntime's wasm memory (/healthz) before,
 * after warm-up and after the load. Workers limit an isolate to 128 MB.
 *
 *   PROTOATLAS_BUNDLE=runs/demo/bundle node_modules/.bin/node edge/bench/isolate-memory.ts [requests=2000] [concurrency=8] <photo>
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Inspector } from './inspector.ts';

const [nArg, cArg, photoArg] = process.argv.slice(2);
const N = Number(nArg ?? 2000);
const C = Number(cArg ?? 8);
if (!process.env.PROTOATLAS_BUNDLE || !photoArg) {
  console.error('usage: PROTOATLAS_BUNDLE=<bundle> node edge/bench/isolate-memory.ts [requests] [concurrency] <photo>');
  process.exit(2);
}
const photo = await readFile(resolve(photoArg));
const port = 8795;
const inspectorPort = 9235;
const dev = spawn(process.execPath, ['edge/scripts/wrangler.ts', 'dev', '--port', String(port), '--inspector-port', String(inspectorPort)], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
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
    const health = (await (await fetch(`${base}/healthz`)).json()) as { wasmMemoryBytes: number | null };
    const mb = (b: number | null) => (b === null ? 'n/a' : `${(b / 1048576).toFixed(1)} MB`);
    const total = heap.totalSize + (health.wasmMemoryBytes ?? 0);
    console.log(`${label.padEnd(22)} JS heap used ${mb(heap.usedSize)} (allocated ${mb(heap.totalSize)}), ort wasm memory ${mb(health.wasmMemoryBytes)}, isolate ≈ ${mb(total)}`);
  };
  const classify = async () => {
    const r = await fetch(`${base}/classify?top=3&evidence=3`, { method: 'POST', body: photo, headers: { 'content-type': 'application/octet-stream' } });
    if (r.status !== 200) throw new Error(`classify answered ${r.status}: ${await r.text()}`);
    await r.arrayBuffer();
  };
  await sample('idle');
  for (let i = 0; i < 20; i++) await classify();
  await sample('after 20 requests');
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
  inspector.close();
} finally {
  dev.kill('SIGTERM');
}

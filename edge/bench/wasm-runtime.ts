/**
 * The same onnxruntime-web session, the same .wasm and the same ONNX file, timed
 * three ways, with nothing else in the measurement (no HTTP body, decode or
 * explanation):
 *   - onnxruntime-node (native, one thread);
 *   - onnxruntime-web in Node (V8, wasm SIMD, one thread), then again in a
 *     Node started with --disable-wasm-trap-handler: V8 then checks every wasm
 *     memory access explicitly, as it does in workerd, which does not install
 *     V8's trap handler (out-of-bounds accesses caught by guard pages);
 *   - onnxruntime-web inside workerd (`wrangler dev`), a bare Worker that runs
 *     the session N times in one request and reports its own clock.
 * It separates what the model costs in wasm from what the runtime adds.
 *
 *   PROTOATLAS_BUNDLE=runs/cub200/bundle node edge/bench/wasm-runtime.ts [runs per request=10]
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as ortNode from 'onnxruntime-node';
import { benchBundle } from './bench-bundle.ts';
import { answerHelp } from '../scripts/usage.ts';

answerHelp(
  import.meta,
  `usage: PROTOATLAS_BUNDLE=<bundle> node_modules/.bin/node edge/bench/wasm-runtime.ts [runs per request=10]

The bundle's ONNX model timed in onnxruntime-node, onnxruntime-web in Node (with and without V8's wasm trap
handler) and onnxruntime-web inside workerd.`,
);

const EDGE = resolve(fileURLToPath(new URL('..', import.meta.url)));
const RUNS = Number(process.argv[2] ?? 10);
const require = createRequire(import.meta.url);

const WORKER = `
import * as ort from 'onnxruntime-web/wasm';
import ortWasm from './ort.wasm';
import model from './model.onnx.bin';
let session = null;
async function init() {
  if (session) return session;
  const placeholder = new ArrayBuffer(8);
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmBinary = placeholder;
  const original = WebAssembly.instantiate;
  WebAssembly.instantiate = (src, imports) =>
    src === placeholder || (ArrayBuffer.isView(src) && src.buffer === placeholder)
      ? original.call(WebAssembly, ortWasm, imports).then((instance) => ({ instance, module: ortWasm }))
      : original.call(WebAssembly, src, imports);
  try {
    session = await ort.InferenceSession.create(new Uint8Array(model), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  } finally {
    WebAssembly.instantiate = original;
  }
  return session;
}
export default {
  async fetch(req) {
    const s = await init();
    const u = new URL(req.url);
    const n = Number(u.searchParams.get('n') ?? 10);
    const size = Number(u.searchParams.get('size'));
    const x = new Float32Array(size * size * 3);
    for (let i = 0; i < x.length; i++) x[i] = (i * 37) % 256;
    const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', x, [1, size, size, 3]) };
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await s.run(feeds, ['distances']);
    return Response.json({ msPerRun: (performance.now() - t0) / n });
  },
};
`;

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

/** Wall ms of `n` runs after `warm` untimed ones (V8 optimises hot wasm functions after a baseline tier). */
async function timeRuns(run: () => Promise<unknown>, warm: number, n: number): Promise<number[]> {
  for (let i = 0; i < warm; i++) await run();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await run();
    out.push(performance.now() - t);
  }
  return out;
}

/** onnxruntime-web's session on the bundle's model in this Node process: wall ms of each timed run. */
async function timeWebInNode(modelPath: string, x: Float32Array, S: number): Promise<number[]> {
  const ortWasm = require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm');
  const ortWeb = (await import('onnxruntime-web/wasm')) as typeof import('onnxruntime-web');
  ortWeb.env.wasm.numThreads = 1;
  ortWeb.env.wasm.proxy = false;
  ortWeb.env.wasm.wasmPaths = pathToFileURL(`${dirname(ortWasm)}/`).href;
  const s = await ortWeb.InferenceSession.create(new Uint8Array(await readFile(modelPath)), {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
  });
  const feeds = { [s.inputNames[0]]: new ortWeb.Tensor('float32', x, [1, S, S, 3]) };
  const times = await timeRuns(() => s.run(feeds, ['distances']), 20, 30);
  await s.release();
  return times;
}

/** The onnxruntime-web timing in a child Node started with `flags` (same bundle). */
async function webInChild(flags: string[]): Promise<number[]> {
  const child = spawn(process.execPath, [...flags, fileURLToPath(import.meta.url)], {
    env: { ...process.env, WASM_RUNTIME_WEB_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((done) => child.on('exit', done));
  if (code !== 0) throw new Error(`node ${flags.join(' ')} exited with ${code}`);
  return JSON.parse(out) as number[];
}

/** The bundle's input size and an input tensor's values (the same in every runtime). */
async function benchInput() {
  const { dir: bundle, manifest, onnx: file } = await benchBundle();
  const S = manifest.preprocessing.size;
  const x = Float32Array.from({ length: S * S * 3 }, (_, i) => (i * 37) % 256);
  return { bundle, manifest, file, S, x, modelPath: join(bundle, file.path) };
}

async function main(): Promise<void> {
  const { manifest, file, S, x, modelPath } = await benchInput();
  const ortWasm = require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm');

  // Native.
  let native: number[];
  {
    const s = await ortNode.InferenceSession.create(modelPath, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      logSeverityLevel: 3,
    });
    const feeds = { [s.inputNames[0]]: new ortNode.Tensor('float32', x, [1, S, S, 3]) };
    native = await timeRuns(() => s.run(feeds, ['distances']), 20, 60);
    await s.release();
  }

  // onnxruntime-web in Node (the /wasm entry, as the Worker imports it), then without the trap handler.
  const web = await timeWebInNode(modelPath, x, S);
  const noTrap = await webInChild(['--disable-wasm-trap-handler']);

  // workerd.
  const dir = join(EDGE, '.assets', 'bench-wasm-runtime');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'worker.js'), WORKER);
  await copyFile(ortWasm, join(dir, 'ort.wasm'));
  await copyFile(modelPath, join(dir, 'model.onnx.bin'));
  await writeFile(
    join(dir, 'wrangler.toml'),
    [
      'name = "protoatlas-wasm-runtime-bench"',
      'main = "worker.js"',
      'compatibility_date = "2026-11-01"',
      '[[rules]]',
      'type = "Data"',
      'globs = ["**/*.bin"]',
      '',
    ].join('\n'),
  );
  const port = 8830 + Math.floor(Math.random() * 100);
  const wrangler = join(dirname(require.resolve('wrangler/package.json')), 'bin', 'wrangler.js');
  const child = spawn(
    process.execPath,
    [wrangler, 'dev', '--port', String(port), '--ip', '127.0.0.1', '--show-interactive-dev-session=false'],
    {
      cwd: dir,
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const workerd: number[] = [];
  try {
    const url = `http://127.0.0.1:${port}/?n=${RUNS}&size=${S}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const r = await fetch(url);
        if (r.ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`wrangler dev did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    for (let i = 0; i < 3; i++) await fetch(url); // warm-up
    for (let i = 0; i < 6; i++) workerd.push(((await (await fetch(url)).json()) as { msPerRun: number }).msPerRun);
  } finally {
    process.kill(-child.pid!, 'SIGTERM');
  }

  const n = median(native);
  const w = median(web);
  const t = median(noTrap);
  const d = median(workerd);
  console.log(
    JSON.stringify(
      {
        model: { id: manifest.model.id, file: file.path, input: S },
        msPerRun: {
          native: +n.toFixed(2),
          webInNode: +w.toFixed(1),
          webInNodeWithoutTrapHandler: +t.toFixed(1),
          webInWorkerd: +d.toFixed(1),
        },
        ratios: {
          webInNodeOverNative: +(w / n).toFixed(2),
          workerdOverNative: +(d / n).toFixed(2),
          workerdOverWebInNode: +(d / w).toFixed(2),
          withoutTrapHandlerOverWebInNode: +(t / w).toFixed(2),
          workerdOverWithoutTrapHandler: +(d / t).toFixed(2),
        },
      },
      null,
      2,
    ),
  );
}

if (process.env.WASM_RUNTIME_WEB_ONLY) {
  const { S, x, modelPath } = await benchInput();
  process.stdout.write(JSON.stringify(await timeWebInNode(modelPath, x, S)));
} else {
  await main();
}

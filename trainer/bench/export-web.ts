/**
 * fp32 vs int8 exports in onnxruntime-node (native) and onnxruntime-web (wasm,
 * one thread, SIMD), batch 1: latency, file size, session creation, the
 * web/native ratio, top-1 agreement with fp32 and accuracy on the validation
 * split, and logits parity of the fp32 export with the trainer.
 *
 *   node_modules/.bin/node trainer/bench/export-web.ts [RUN_DIR] [--data DIR] [--calib N] [--val N]
 *       [--runs N] [--rounds N] [--parity N] [--web-eval all|deployed|none] [--keep DIR] [--json FILE]
 *
 * RUN_DIR defaults to runs/bench-cub200. Latencies are medians of per-run
 * process CPU time (user+system) over --rounds interleaved rounds of --runs
 * runs: on a shared machine wall time also counts time the process waited for
 * a core. Wall-time medians are printed next to them.
 *
 * Variants: fp32 (the export as is); int8 static (QOperator / QDQ, weights per
 * channel / per tensor) on every float Conv except the prototype layer; weight-
 * only int8 of the head; for an int8 ONNX backbone, its QLinearConv run in
 * float (float compute: no activation rounding) and the depthwise emulation
 * (same numbers); for a run whose int8 ONNX backbone computes in float (the CUB
 * presets), the same run with the backbone's published int8 arithmetic, as is,
 * with depthwise emulation, and with every quantised op in exact float form
 * (int8-in-float.ts); "deployed" is what the bundle ships (int8FromFp32 defaults; a fine-tuned
 * backbone kept float). Diagnostic rows (no depthwise convs at all: wrong outputs, timing only)
 * show where wasm time goes.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { decodeModel, encodeModel, makeAttribute, makeNode } from '../src/onnx/onnx-proto.ts';
import { decodeMany, toNHWC } from '../src/data/decode.ts';
import { loadDataset } from '../src/data/load-dataset.ts';
import type { RgbImage } from '../src/data/types.ts';
import { loadModelRunner } from '../src/analysis/load-model-runner.ts';
import { exportOnnx } from '../src/export/export-onnx.ts';
import { createWebSession } from '../src/export/ort-web.ts';
import {
  intAttribute,
  intsAttribute,
  quantizeWeightsOnly,
  rewriteForWasm,
  summarizeModel,
} from '../src/export/quantize.ts';
import { floatCompute } from '../src/onnx/float-compute.ts';
import { int8InFloat } from './int8-in-float.ts';
import {
  calibrationBatches,
  calibrationTrainItems,
  inputBatch,
  int8FromFp32,
  type Int8Options,
} from '../src/export/quantize-export.ts';
import type { CalibrationBatch } from '../src/export/calibrate.ts';
import { resolveRepoPath } from '../src/core/data-path.ts';
import { loadModel } from '../src/model/model-file.ts';
import { resolveDataDir } from '../src/model/prepare-data.ts';
import { initBackend } from '../src/tf/backend.ts';
import { answerHelp, benchNumber } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/export-web.ts [RUN_DIR=runs/bench-cub200] [--data DIR] \\
         [--calib N] [--val N]
         [--runs N] [--rounds N] [--parity N] [--web-eval all|deployed|none] [--keep DIR] [--json FILE]

fp32 and int8 exports in onnxruntime-node and onnxruntime-web: latency, size, agreement and accuracy.`,
);

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    data: { type: 'string' },
    calib: { type: 'string', default: '128' },
    val: { type: 'string', default: 'all' },
    runs: { type: 'string', default: '15' },
    rounds: { type: 'string', default: '3' },
    parity: { type: 'string', default: '16' },
    'web-eval': { type: 'string', default: 'deployed' },
    keep: { type: 'string' },
    json: { type: 'string' },
  },
});
const runDir = positionals[0] ?? resolveRepoPath('runs/bench-cub200');
const RUNS = benchNumber('runs', args.runs, { integer: true, min: 1 })!;
const ROUNDS = benchNumber('rounds', args.rounds, { integer: true, min: 1 })!;
const PARITY = benchNumber('parity', args.parity, { integer: true, min: 0 })!;
const CALIB = benchNumber('calib', args.calib, { integer: true, min: 0 })!;
// 'all' is the whole validation split.
const VAL = args.val === 'all' ? undefined : benchNumber('val', args.val, { integer: true, min: 1 });

await initBackend('cpu', { quiet: true });
const tmp = await mkdtemp(join(tmpdir(), 'protoatlas-export-web-'));
const log = (s: string): void => console.log(s);
const report: Record<string, unknown> = {
  run: runDir,
  cpu: `${(await import('node:os')).cpus()[0]?.model}`,
  ort: '1.30.0 (node native, web wasm SIMD 1 thread)',
};

try {
  // ---- fp32 export and data ------------------------------------------------------------
  const t0 = performance.now();
  const fp32File = join(tmp, 'fp32.onnx');
  const exp = await exportOnnx(runDir, fp32File);
  const fp32 = new Uint8Array(await readFile(fp32File));
  const spec = exp.input;
  const S = spec.preprocess.size;
  log(
    `fp32 export of ${runDir}: ${mb(fp32.length)} in ${(performance.now() - t0).toFixed(0)} ms (${exp.notes.join('; ')})`,
  );

  const { config, head } = await loadModel(runDir);
  const dataDir = args.data ?? (await summaryDataRoot(runDir));
  const root = await resolveDataDir(config, dataDir ?? null, true);
  const ds = await loadDataset(root, { valPerClass: config.data.valPerClass, seed: config.seed });
  const valItems = VAL === undefined ? ds.splits.val : ds.splits.val.slice(0, VAL);
  const tDec = performance.now();
  const decoded = await decodeMany(valItems, S, {});
  const valImages = decoded.images.filter((im): im is RgbImage => im !== null);
  const labels = valItems.filter((_, i) => decoded.images[i] !== null).map((it) => it.label);
  const calibItems = await calibrationTrainItems(config, dataDir ?? null, CALIB);
  const calib: CalibrationBatch[] = [];
  for await (const b of calibrationBatches(calibItems, spec)) calib.push(b);
  log(
    `data: ${root}: ${valImages.length} validation images, ${calibItems.length} calibration (training) images, decoded in ${((performance.now() - tDec) / 1000).toFixed(1)} s`,
  );

  // ---- variants -----------------------------------------------------------------------------
  const hasQConv = decodeModel(fp32).graph.nodes.some((n) => n.opType === 'QLinearConv');
  const hasFloatBackbone = decodeModel(fp32).graph.nodes.some(
    (n) => n.opType === 'Conv' && !n.inputs[1].startsWith('head/'),
  );
  interface Variant {
    name: string;
    bytes: Uint8Array;
    what: string;
    diagnostic?: boolean;
  }
  const variants: Variant[] = [
    {
      name: 'fp32',
      bytes: fp32,
      what: hasQConv ? 'export as is (int8 QOperator backbone, fp32 head)' : 'export as is',
    },
  ];
  const int8 = async (name: string, what: string, o: Int8Options): Promise<void> => {
    const t = performance.now();
    const r = await int8FromFp32(fp32, calib, o);
    variants.push({
      name,
      bytes: r.bytes,
      what: `${what} [${r.notes.join('; ')}; built in ${((performance.now() - t) / 1000).toFixed(1)} s]`,
    });
  };
  const staticHead = hasFloatBackbone ? ({} as Int8Options) : ({ head: 'static' } as Int8Options);
  await int8('int8 qop/pc', 'static QOperator, per-channel weights', {
    ...staticHead,
    format: 'qoperator',
    weights: 'per-channel',
    wasmKinds: [],
  });
  await int8('int8 qop/pt', 'static QOperator, per-tensor weights', {
    ...staticHead,
    format: 'qoperator',
    weights: 'per-tensor',
    wasmKinds: [],
  });
  await int8('int8 qdq/pc', 'static QDQ, per-channel weights', {
    ...staticHead,
    format: 'qdq',
    weights: 'per-channel',
    wasmKinds: [],
  });
  await int8('int8 qdq/pt', 'static QDQ, per-tensor weights', {
    ...staticHead,
    format: 'qdq',
    weights: 'per-tensor',
    wasmKinds: [],
  });
  variants.push({
    name: 'w8 head',
    bytes: quantizeWeightsOnly(fp32, { include: (n) => n.opType === 'Conv' && n.inputs[1].startsWith('head/addon') })
      .bytes,
    what: 'weight-only int8 head add-on, rest as fp32',
  });
  if (hasQConv) {
    variants.push({
      name: 'float compute',
      bytes: floatCompute(fp32, { weights: 'int8' }),
      what: 'QLinearConv → DequantizeLinear(int8 weights) + float Conv: no activation rounding',
    });
    variants.push({
      name: 'fp32+dw emul',
      bytes: rewriteForWasm(fp32).bytes,
      what: 'fp32 with depthwise QLinearConv emulated in float (same numbers)',
    });
    variants.push({
      name: 'diag: no dw int8',
      bytes: dropDepthwise(fp32),
      what: 'fp32 without its depthwise convs (timing only)',
      diagnostic: true,
    });
    variants.push({
      name: 'diag: no dw float',
      bytes: dropDepthwise(floatCompute(fp32, { weights: 'float' })),
      what: 'float compute without depthwise convs (timing only)',
      diagnostic: true,
    });
  }
  if (hasFloatBackbone)
    await int8('int8 +dw emul', 'static QOperator per-channel + depthwise emulation', {
      format: 'qoperator',
      weights: 'per-channel',
    });
  if (config.backbone.kind === 'onnx' && config.backbone.compute === 'float' && !config.backbone.trainable) {
    // The same run with the backbone's published int8 arithmetic: what int8 activations cost in
    // wasm. (The head was trained on float-compute features, so these rows agree less.)
    const file = join(tmp, 'int8-backbone.onnx');
    await exportOnnx(runDir, file, { backboneCompute: 'int8' });
    const q8 = new Uint8Array(await readFile(file));
    const asPublished = (await int8FromFp32(q8, calib, { wasmKinds: [] })).bytes;
    variants.push({
      name: 'int8 act',
      bytes: asPublished,
      what: 'the backbone as published (int8 QLinearConv/QLinearAdd), weight-only int8 head',
    });
    variants.push({
      name: 'int8 act +dw emul',
      bytes: rewriteForWasm(asPublished).bytes,
      what: 'int8 act with depthwise QLinearConv emulated in float (same numbers)',
    });
    const exact = int8InFloat(asPublished);
    variants.push({
      name: 'int8 act in float',
      bytes: exact.bytes,
      what: `int8 act with every quantised op in exact float form (same numbers: ${Object.entries(exact.converted)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ')})`,
    });
  }
  // What the bundle ships (bundle-onnx.ts): a fine-tuned ONNX backbone stays float, the head's weights go int8.
  const tuned = config.backbone.kind === 'onnx' && config.backbone.trainable;
  await int8('deployed', tuned ? 'as the bundle: tuned backbone float, int8 head weights' : 'int8FromFp32 defaults', {
    backbone: tuned ? 'float' : undefined,
  });
  if (args.keep) {
    await mkdir(args.keep, { recursive: true });
    for (const v of variants)
      if (!v.diagnostic) await writeFile(join(args.keep, `${v.name.replace(/[^a-z0-9]+/gi, '-')}.onnx`), v.bytes);
  }

  // ---- sessions and latency -------------------------------------------------------------
  const one = inputBatch([valImages[0]], spec);
  const feeds = { [spec.name]: new ort.Tensor('float32', one.data, one.dims) };
  const tCold = performance.now();
  const cold = await createWebSession(fp32);
  const coldMs = performance.now() - tCold;
  await cold.release();
  log(`onnxruntime-web: first session (wasm compile + instantiate + fp32 session) ${coldMs.toFixed(0)} ms`);
  report.webFirstSessionMs = coldMs;

  // V8 compiles wasm with a baseline tier first and optimises hot functions later: warm the
  // (shared) runtime up before timing, or the first variant pays for the tier-up.
  {
    const w = await createWebSession(fp32);
    for (let i = 0; i < 20; i++) await w.run(feeds);
    await w.release();
  }

  interface Row {
    name: string;
    what: string;
    mb: number;
    int8MiB: number;
    nodeCreate: number;
    webCreate: number;
    node: number[];
    web: number[];
    nodeWall: number[];
    webWall: number[];
    agree?: number;
    top1?: number;
    webAgree?: number;
    webTop1?: number;
    diagnostic: boolean;
  }
  const rows: Row[] = [];
  const sessions: { n: ort.InferenceSession; w: ort.InferenceSession }[] = [];
  for (const v of variants) {
    const nodeCreate = median(
      await repeat(3, async () =>
        timed(
          () => ort.InferenceSession.create(v.bytes, nodeOpts()),
          (s) => s.release(),
        ),
      ),
    );
    const webCreate = median(
      await repeat(3, async () =>
        timed(
          () => createWebSession(v.bytes),
          (s) => s.release(),
        ),
      ),
    );
    sessions.push({ n: await ort.InferenceSession.create(v.bytes, nodeOpts()), w: await createWebSession(v.bytes) });
    const s = summarizeModel(v.bytes);
    rows.push({
      name: v.name,
      what: v.what,
      mb: v.bytes.length / 2 ** 20,
      int8MiB: (s.weightBytes.int8 ?? 0) / 2 ** 20,
      nodeCreate,
      webCreate,
      node: [],
      web: [],
      nodeWall: [],
      webWall: [],
      diagnostic: !!v.diagnostic,
    });
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < variants.length; i++) {
      const n = await latency(() => sessions[i].n.run(feeds));
      const w = await latency(() => sessions[i].w.run(feeds));
      rows[i].node.push(n.cpu);
      rows[i].nodeWall.push(n.wall);
      rows[i].web.push(w.cpu);
      rows[i].webWall.push(w.wall);
    }
  }

  // ---- agreement and accuracy on the validation split ----------------------------------------
  const predict = async (s: ort.InferenceSession, batch: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < valImages.length; i += batch) {
      const b = inputBatch(valImages.slice(i, i + batch), spec);
      const res = await s.run({ [spec.name]: new ort.Tensor('float32', b.data, b.dims) }, ['logits']);
      out.push(...argmaxRows(res.logits.data as Float32Array, b.dims[0]));
    }
    return out;
  };
  const tEval = performance.now();
  const evalSessions = await Promise.all(
    variants.map((v) => (v.diagnostic ? null : ort.InferenceSession.create(v.bytes, { logSeverityLevel: 3 }))),
  );
  const ref = await predict(evalSessions[0]!, 32);
  for (let i = 0; i < variants.length; i++) {
    const s = evalSessions[i];
    if (!s) continue;
    const p = i === 0 ? ref : await predict(s, 32);
    rows[i].agree = share(p, ref);
    rows[i].top1 = share(p, labels);
    await s.release();
  }
  const webEval = args['web-eval'];
  for (let i = 0; i < variants.length; i++) {
    if (
      variants[i].diagnostic ||
      webEval === 'none' ||
      (webEval === 'deployed' && !['fp32', 'deployed'].includes(variants[i].name))
    )
      continue;
    const p = await predict(sessions[i].w, 1);
    rows[i].webAgree = share(p, ref);
    rows[i].webTop1 = share(p, labels);
  }
  log(
    `validation split evaluated in ${((performance.now() - tEval) / 1000).toFixed(0)} s (node batch 32; web batch 1)`,
  );

  // ---- table ------------------------------------------------------------------------------------
  log('');
  log(
    `batch 1, one thread: median CPU ms per run (wall ms); sessions: median of 3 creations (ms); agreement = top-1 equal to fp32 (onnxruntime-node) on ${valImages.length} validation images`,
  );
  log(
    `${'variant'.padEnd(18)} ${'MiB'.padStart(5)} ${'int8'.padStart(5)} ${'node ms'.padStart(13)} ${'web ms'.padStart(13)} ${'web/node'.padStart(8)} ${'create n/w'.padStart(11)} ${'agree'.padStart(7)} ${'top-1'.padStart(6)} ${'web agree'.padStart(9)} ${'web top-1'.padStart(9)}`,
  );
  for (const r of rows) {
    const n = median(r.node);
    const w = median(r.web);
    log(
      `${r.name.padEnd(18)} ${r.mb.toFixed(2).padStart(5)} ${r.int8MiB.toFixed(2).padStart(5)} ${`${n.toFixed(2)} (${median(r.nodeWall).toFixed(1)})`.padStart(13)} ${`${w.toFixed(1)} (${median(r.webWall).toFixed(1)})`.padStart(13)} ${`${(w / n).toFixed(1)}x`.padStart(8)} ${`${r.nodeCreate.toFixed(0)}/${r.webCreate.toFixed(0)}`.padStart(11)} ${pct(r.agree).padStart(7)} ${pct(r.top1).padStart(6)} ${pct(r.webAgree).padStart(9)} ${pct(r.webTop1).padStart(9)}`,
    );
  }
  log('');
  for (const r of rows) log(`  ${r.name}: ${r.what}`);
  report.rows = rows.map((r) => ({
    ...r,
    nodeMs: median(r.node),
    webMs: median(r.web),
    ratio: median(r.web) / median(r.node),
  }));

  // ---- graph optimisation levels (deployed, web) ---------------------------------------------
  const deployed = variants.find((v) => v.name === 'deployed')!;
  const levels: Record<string, { create: number; ms: number }> = {};
  for (const level of ['disabled', 'basic', 'extended', 'all'] as const) {
    const create = median(
      await repeat(3, async () =>
        timed(
          () => createWebSession(deployed.bytes, { graphOptimizationLevel: level }),
          (s) => s.release(),
        ),
      ),
    );
    const s = await createWebSession(deployed.bytes, { graphOptimizationLevel: level });
    const ms = (await latency(() => s.run(feeds))).cpu;
    await s.release();
    levels[level] = { create, ms };
  }
  {
    const create = median(
      await repeat(3, async () =>
        timed(
          () => createWebSession(deployed.bytes, { freeDimensionOverrides: { N: 1 } }),
          (s) => s.release(),
        ),
      ),
    );
    const s = await createWebSession(deployed.bytes, { freeDimensionOverrides: { N: 1 } });
    const ms = (await latency(() => s.run(feeds))).cpu;
    await s.release();
    levels['all, N=1'] = { create, ms };
  }
  log(
    `deployed in onnxruntime-web by graphOptimizationLevel (create ms / run CPU ms): ${Object.entries(levels)
      .map(([k, v]) => `${k} ${v.create.toFixed(0)}/${v.ms.toFixed(1)}`)
      .join(', ')}`,
  );
  report.levels = levels;
  for (const s of sessions) {
    await s.n.release();
    await s.w.release();
  }

  // ---- fp32 parity: onnxruntime-node, onnxruntime-web, trainer -------------------------------------
  const P = Math.min(PARITY, valImages.length);
  if (P > 0) {
    const imgs = valImages.slice(0, P);
    const b = inputBatch(imgs, spec);
    const ns = await ort.InferenceSession.create(fp32, { logSeverityLevel: 3 });
    const nodeLogits = (await ns.run({ [spec.name]: new ort.Tensor('float32', b.data, b.dims) }, ['logits'])).logits
      .data as Float32Array;
    await ns.release();
    const ws = await createWebSession(fp32);
    const webLogits = new Float32Array(nodeLogits.length);
    const C = nodeLogits.length / P;
    for (let i = 0; i < P; i++) {
      const x = inputBatch([imgs[i]], spec);
      webLogits.set(
        (await ws.run({ [spec.name]: new ort.Tensor('float32', x.data, x.dims) }, ['logits'])).logits
          .data as Float32Array,
        i * C,
      );
    }
    await ws.release();
    const trainer = await trainerLogits(imgs);
    const parity = {
      nodeVsTrainer: maxAbs(nodeLogits, trainer),
      webVsTrainer: maxAbs(webLogits, trainer),
      webVsNode: maxAbs(webLogits, nodeLogits),
      logitRange: range(trainer),
    };
    log(
      `fp32 parity on ${P} validation images, max |Δlogit|: onnxruntime-node vs trainer ${parity.nodeVsTrainer.toExponential(2)}, ` +
        `onnxruntime-web vs trainer ${parity.webVsTrainer.toExponential(2)}, web vs node ${parity.webVsNode.toExponential(2)} (logits span ${parity.logitRange.toFixed(1)})`,
    );
    report.parity = parity;
  }
  head.dispose();
  if (args.json) await writeFile(args.json, JSON.stringify(report, null, 2));

  /** The trainer's forward (backbone, then the tfjs head) on decoded images. */
  async function trainerLogits(imgs: RgbImage[]): Promise<Float32Array> {
    const { runner } = await loadModelRunner(runDir);
    try {
      return (await runner.forward(toNHWC(imgs, spec.preprocess, false), imgs.length)).logits;
    } finally {
      await runner.dispose();
    }
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
}

// ---- helpers -------------------------------------------------------------------------------------

function nodeOpts(): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    logSeverityLevel: 3,
  };
}

async function timed<T>(make: () => Promise<T>, done: (t: T) => Promise<unknown>): Promise<number> {
  const t = performance.now();
  const v = await make();
  const ms = performance.now() - t;
  await done(v);
  return ms;
}

async function repeat(n: number, f: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await f());
  return out;
}

/** Median CPU and wall ms of RUNS runs after two warm-ups. */
async function latency(run: () => Promise<unknown>): Promise<{ cpu: number; wall: number }> {
  for (let i = 0; i < 2; i++) await run();
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    await run();
    wall.push(performance.now() - t);
    const u = process.cpuUsage(c);
    cpu.push((u.user + u.system) / 1000);
  }
  return { cpu: median(cpu), wall: median(wall) };
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

function mb(n: number): string {
  return `${(n / 2 ** 20).toFixed(2)} MiB`;
}

function pct(v: number | undefined): string {
  return v === undefined ? '-' : `${(100 * v).toFixed(1)}%`;
}

function share(a: number[], b: number[]): number {
  return a.filter((v, i) => v === b[i]).length / a.length;
}

function argmaxRows(v: Float32Array, n: number): number[] {
  const c = v.length / n;
  return Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let j = 1; j < c; j++) if (v[i * c + j] > v[i * c + best]) best = j;
    return best;
  });
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function range(a: Float32Array): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of a) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return hi - lo;
}

async function summaryDataRoot(run: string): Promise<string | undefined> {
  const p = join(run, 'summary.json');
  if (!existsSync(p)) return undefined;
  const s = JSON.parse(await readFile(p, 'utf8')) as { dataset?: { root?: string } };
  return s.dataset?.root && existsSync(s.dataset.root) ? s.dataset.root : undefined;
}

/** Timing diagnostic: depthwise convs replaced by Identity (stride 1) or a 1x1 strided MaxPool. */
function dropDepthwise(bytes: Uint8Array): Uint8Array {
  const m = decodeModel(bytes);
  const nodes = m.graph.nodes.map((n) => {
    if ((n.opType !== 'QLinearConv' && n.opType !== 'Conv') || (intAttribute(n, 'group') ?? 1) === 1) return n;
    const stride = intsAttribute(n, 'strides')?.[0] ?? 1;
    return stride === 1
      ? makeNode('Identity', [n.inputs[0]], n.outputs, { name: n.name })
      : makeNode('MaxPool', [n.inputs[0]], n.outputs, {
          name: n.name,
          attributes: [makeAttribute('kernel_shape', [1, 1]), makeAttribute('strides', [stride, stride])],
        });
  });
  return encodeModel({ ...m, graph: { ...m.graph, nodes } });
}

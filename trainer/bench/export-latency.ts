/**
 * ONNX export benchmark: exports a model, then measures it in onnxruntime-node
 * (batch 1, one intra-op thread, as on a phone-class CPU): file size, session
 * creation time, latency of the whole model and of the head alone.
 *
 *   node_modules/.bin/node trainer/bench/export-latency.ts [RUN_DIR] [--input nchw-normalized|nhwc-rgb255]
 *       [--runs N] [--threads N] [--check N] [--out FILE]
 *
 * Without RUN_DIR: a random cub200-preset head (1280 → 128 relu → 128 l2norm,
 * 200 classes x 10 prototypes) on the int8 MobileNetV2 from $PROTOPNET_DATA.
 * --check N (with RUN_DIR): compares onnxruntime with the trainer's forward on
 * the first N prototype source images, where distances are near 0 and the log
 * similarity is most sensitive to round-off.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import type { PreprocessSpec } from '../src/backbone/types.ts';
import { decodeImage, toNHWC } from '../src/data/decode.ts';
import type { InputFormat } from '../src/export/backbone-graph.ts';
import { buildProtoPNetOnnx, exportOnnx, verifyExport, type OutputSpec } from '../src/export/export-onnx.ts';
import { buildHeadModel, headExportWeights } from '../src/export/head-graph.ts';
import { ProtoHead } from '../src/head/proto-head.ts';
import { referenceDataDir } from '../src/core/data-path.ts';
import { loadModel } from '../src/model/model-file.ts';
import { Rng } from '../src/core/rng.ts';
import { initBackend } from '../src/tf/backend.ts';
import { loadModelRunner } from '../src/analysis/load-model-runner.ts';
import { answerHelp, benchNumber } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/export-latency.ts [RUN_DIR] [--input nchw-normalized|nhwc-rgb255]
         [--runs N] [--threads N] [--check N] [--out FILE]

Exports a model to ONNX and measures it in onnxruntime-node (batch 1): file size, session creation, latency of the
whole model and of the head. Without RUN_DIR, a random cub200-preset head on the int8 MobileNetV2.`,
);

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    input: { type: 'string', default: 'nchw-normalized' },
    runs: { type: 'string', default: '50' },
    threads: { type: 'string', default: '1' },
    check: { type: 'string', default: '0' },
    out: { type: 'string' },
  },
});
const input = args.input as InputFormat;
if (input !== 'nchw-normalized' && input !== 'nhwc-rgb255')
  throw new Error(`--input must be nchw-normalized or nhwc-rgb255, got ${args.input}`);
const runs = benchNumber('runs', args.runs, { integer: true, min: 1 })!;
const threads = benchNumber('threads', args.threads, { integer: true, min: 1 })!;
const checkImages = benchNumber('check', args.check, { integer: true, min: 0 })!;
const runDir = positionals[0];

await initBackend('cpu', { quiet: true });
const tmp = await mkdtemp(join(tmpdir(), 'protoatlas-export-bench-'));
const file = args.out ?? join(tmp, 'model.onnx');

try {
  const t0 = performance.now();
  let inputShape: number[];
  let outputs: OutputSpec[];
  if (runDir) {
    const r = await exportOnnx(runDir, file, { input });
    inputShape = r.input.shape.map((d) => (typeof d === 'number' ? d : 1));
    outputs = r.outputs;
    console.log(
      `exported ${runDir} → ${file} in ${(performance.now() - t0).toFixed(0)} ms (opset ${r.opset}; ${r.notes.join('; ')})`,
    );
  } else {
    const path = join(referenceDataDir(), 'backbones/mobilenetv2-int8-onnx/mobilenetv2-12-int8.onnx');
    const pre: PreprocessSpec = { size: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    const head = new ProtoHead(
      {
        inputChannels: 1280,
        addOn: [
          { channels: 128, activation: 'relu' },
          { channels: 128, activation: 'l2norm' },
        ],
        numClasses: 200,
        prototypesPerClass: 10,
        incorrectClassWeight: -0.5,
      },
      new Rng(0),
    );
    const e = await verifyExport(
      buildProtoPNetOnnx({ kind: 'onnx', bytes: await readFile(path) }, headExportWeights(head), pre, { input }),
    );
    head.dispose();
    await writeFile(file, e.bytes);
    inputShape = e.input.shape.map((d) => (typeof d === 'number' ? d : 1));
    outputs = e.outputs;
    console.log(
      `exported a random cub200-preset head on ${path} in ${(performance.now() - t0).toFixed(0)} ms (opset ${e.opset}; ${e.notes.join('; ')})`,
    );
  }
  const bytes = await readFile(file);
  console.log(
    `model: ${(bytes.length / 2 ** 20).toFixed(2)} MiB; input image [${inputShape}] (${input}); outputs ${outputs.map((o) => `${o.name} [${o.shape}]`).join(', ')}`,
  );

  const session = await timeSessions(bytes, 5);
  const x = new ort.Tensor(
    'float32',
    Float32Array.from({ length: inputShape.reduce((a, b) => a * b, 1) }, (_, i) =>
      input === 'nhwc-rgb255' ? 128 + 100 * Math.sin(i * 0.01) : Math.sin(i * 0.01),
    ),
    inputShape,
  );
  const full = await latency(session, { image: x });
  console.log(
    `batch 1, ${threads} thread(s), ${runs} runs: median ${full.median.toFixed(2)} ms, p90 ${full.p90.toFixed(2)} ms`,
  );
  await session.release();

  // The head alone, on a feature map of the exported size: its share of the latency.
  await timeHead(outputs);
  if (runDir && checkImages > 0) await check(runDir, bytes, checkImages);
} finally {
  await rm(tmp, { recursive: true, force: true });
}

async function timeSessions(bytes: Uint8Array, n: number): Promise<ort.InferenceSession> {
  const times: number[] = [];
  let last: ort.InferenceSession | null = null;
  for (let i = 0; i < n; i++) {
    await last?.release();
    const t = performance.now();
    last = await ort.InferenceSession.create(bytes, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      logSeverityLevel: 3,
    });
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  console.log(
    `session creation: median ${times[Math.floor(n / 2)].toFixed(0)} ms (min ${times[0].toFixed(0)}, max ${times[n - 1].toFixed(0)}) over ${n}`,
  );
  return last!;
}

async function latency(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
): Promise<{ median: number; p90: number }> {
  for (let i = 0; i < 5; i++) await session.run(feeds);
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    await session.run(feeds);
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return { median: t[Math.floor(runs / 2)], p90: t[Math.floor(runs * 0.9)] };
}

async function timeHead(outs: OutputSpec[]): Promise<void> {
  const d = outs.find((o) => o.name === 'distances')!.shape;
  const [h, w] = [d[2], d[3]].map(Number);
  const spec = runDir ? (await loadModel(runDir)).head : null;
  const head =
    spec ??
    new ProtoHead(
      {
        inputChannels: 1280,
        addOn: [
          { channels: 128, activation: 'relu' },
          { channels: 128, activation: 'l2norm' },
        ],
        numClasses: 200,
        prototypesPerClass: 10,
        incorrectClassWeight: -0.5,
      },
      new Rng(0),
    );
  const c = head.spec.inputChannels;
  const bytes = buildHeadModel(headExportWeights(head), { height: h, width: w });
  head.dispose();
  const s = await ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
  });
  const f = new ort.Tensor(
    'float32',
    Float32Array.from({ length: c * h * w }, (_, i) => Math.abs(Math.sin(i))),
    [1, c, h, w],
  );
  const r = await latency(s, { features: f });
  console.log(
    `head alone (features [1, ${c}, ${h}, ${w}]): median ${r.median.toFixed(2)} ms, p90 ${r.p90.toFixed(2)} ms`,
  );
  await s.release();
}

/** onnxruntime vs the trainer (tfjs cpu backend) on prototype source images. */
async function check(dir: string, bytes: Uint8Array, n: number): Promise<void> {
  const { runner, model } = await loadModelRunner(dir);
  const { json, head } = model;
  const paths = [...new Set((json.prototypes ?? []).map((p) => p.imagePath).filter((p): p is string => !!p))].slice(
    0,
    n,
  );
  if (!paths.length) {
    console.log('check: the model records no prototype source images');
    await runner.dispose();
    return;
  }
  const pre = runner.preprocess;
  const imgs = await Promise.all(paths.map((p) => decodeImage(p, { size: pre.size })));
  const x = toNHWC(imgs, pre, false);
  const k = imgs.length;
  const feats = await runner.features(x, k);
  const features = Float32Array.from(feats.dataSync() as Float32Array);
  const shape = feats.shape;
  feats.dispose();
  const out = head.forward(tf.tensor4d(features, shape));
  const refLogits = out.logits.dataSync();
  const refSim = out.similarities.dataSync();
  const refMin = out.minDistances.dataSync();
  // Same photos through the exported graph.
  const feed =
    input === 'nhwc-rgb255'
      ? new ort.Tensor('float32', Float32Array.from(imgs.flatMap((im) => Array.from(im.data))), [
          k,
          pre.size,
          pre.size,
          3,
        ])
      : new ort.Tensor('float32', nhwcToNchw(x, k, pre.size), [k, 3, pre.size, pre.size]);
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  const res = await session.run({ image: feed });
  await session.release();
  const logits = res.logits.data as Float32Array;
  const sim = res.similarities.data as Float32Array;
  const diff = (a: ArrayLike<number>, bb: ArrayLike<number>) =>
    Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - bb[i])), 0);
  const C = head.spec.numClasses;
  let agree = 0;
  for (let i = 0; i < k; i++) {
    const am = (v: ArrayLike<number>) =>
      Array.from(v)
        .slice(i * C, (i + 1) * C)
        .reduce((best, val, j, arr) => (val > arr[best] ? j : best), 0);
    if (am(logits) === am(refLogits)) agree++;
  }
  console.log(
    `check on ${k} prototype source images: max |Δlogit| ${diff(logits, refLogits).toExponential(2)}, max |Δsimilarity| ${diff(sim, refSim).toExponential(2)}, ` +
      `smallest trainer distance ${Math.min(...Array.from(refMin)).toExponential(2)}, top-1 agreement ${agree}/${k}`,
  );
  // Both sides expand ||z||^2 - 2 z.p + ||p||^2 in float32, which cancels badly near d = 0, where
  // log((d+1)/(d+1e-4)) is steepest. Float64 distances from the same embeddings show who is off.
  const exact = exactSimilarities(head, features, shape);
  console.log(
    `  vs float64 distances: trainer max |Δsimilarity| ${diff(refSim, exact).toExponential(2)}, onnx ${diff(sim, exact).toExponential(2)}`,
  );
  tf.dispose([out.logits, out.similarities, out.minDistances]);
  head.dispose();
}

/** Similarities from float64 squared distances ||z - p||^2 (z: the trainer's float32 embeddings). */
function exactSimilarities(
  head: ProtoHead,
  features: Float32Array,
  shape: [number, number, number, number],
): Float64Array {
  const [k, h, w] = shape;
  const zt = head.embed(tf.tensor4d(features, shape));
  const z = zt.dataSync() as Float32Array;
  zt.dispose();
  const p = head.prototypes.dataSync() as Float32Array;
  const m = head.numPrototypes;
  const P = head.prototypeDim;
  const out = new Float64Array(k * m);
  for (let i = 0; i < k; i++)
    for (let j = 0; j < m; j++) {
      let best = Infinity;
      for (let q = 0; q < h * w; q++) {
        let d = 0;
        const row = (i * h * w + q) * P;
        for (let c = 0; c < P; c++) d += (z[row + c] - p[j * P + c]) ** 2;
        best = Math.min(best, d);
      }
      out[i * m + j] = Math.log((best + 1) / (best + 1e-4));
    }
  return out;
}

function nhwcToNchw(x: Float32Array, n: number, s: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < s * s; p++)
      for (let c = 0; c < 3; c++) out[(i * 3 + c) * s * s + p] = x[(i * s * s + p) * 3 + c];
  return out;
}

/**
 * Edge benchmark against local workerd (`npm run dev` on a bundle):
 *  - warm server-side inference (the Worker's own timing) next to
 *    onnxruntime-node (native) on the same ONNX file and input;
 *  - end-to-end latency p50/p99 of a 500x375 JPEG, one request at a time;
 *  - 2,000 requests at concurrency 8 with autocannon: errors, latency, and the
 *    workerd process's resident memory before, during and after; then the same
 *    run again, to see whether memory keeps growing. (RSS covers the whole
 *    workerd process: the runtime, wrangler's helper workers and the compiled
 *    wasm code, so it bounds the isolate's memory from above.)
 *
 *   PROTOATLAS_BUNDLE=runs/demo/bundle npm run bench --workspace edge
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import autocannon from 'autocannon';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { resizeStretch } from '@protoatlas/shared';
import { benchBundle } from './bench-bundle.ts';
import { startWranglerDev } from '../scripts/dev-server.ts';
import { answerHelp } from '../scripts/usage.ts';

answerHelp(
  import.meta,
  `usage: [EDGE_BENCH_REQUESTS=2000] PROTOATLAS_BUNDLE=<bundle> npm run bench --workspace edge

The edge under local workerd: warm inference against onnxruntime-node, latency, and a load run with memory.`,
);

/** Requests per load run (EDGE_BENCH_REQUESTS; 2,000 by default, as the issue asks). */
const LOAD_REQUESTS = Number(process.env.EDGE_BENCH_REQUESTS ?? 2000);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const round = (v: number, d = 2) => Math.round(v * 10 ** d) / 10 ** d;

/** Resident memory (MB) of the workerd processes in a process group. */
function workerdRssMb(pgid: number): number {
  const out = execFileSync('ps', ['-eo', 'pgid=,rss=,comm='], { encoding: 'utf8' });
  let kb = 0;
  for (const line of out.split('\n')) {
    const [g, rss, comm] = line.trim().split(/\s+/);
    if (Number(g) === pgid && comm?.startsWith('workerd')) kb += Number(rss);
  }
  return round(kb / 1024, 1);
}

async function main(): Promise<void> {
  const { dir: bundle, manifest, onnx } = await benchBundle();
  const S = manifest.preprocessing.size;

  // A 500x375 JPEG from the bundle's own pictures (a prototype's source image).
  const picture = manifest.prototypes.find((p) => p.files)?.files?.source;
  const base = picture
    ? sharp(join(bundle, picture))
    : sharp({ create: { width: 64, height: 48, channels: 3, background: '#5080a0' } });
  const jpeg = await base.resize(500, 375, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();

  // Native reference: the same file, the same input tensor.
  const rgb = await sharp(jpeg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const tensor = Float32Array.from(
    resizeStretch({ data: rgb.data, width: rgb.info.width, height: rgb.info.height, channels: 3 }, S, S),
  );
  const session = await ort.InferenceSession.create(join(bundle, onnx.path), {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
  });
  const feeds = { [manifest.files.onnx!.inputs[0].name]: new ort.Tensor('float32', tensor, [1, S, S, 3]) };
  const native: number[] = [];
  for (let i = 0; i < 330; i++) {
    const t = performance.now();
    await session.run(feeds, ['distances', 'logits']);
    if (i >= 30) native.push(performance.now() - t);
  }
  await session.release();

  const server = await startWranglerDev(bundle);
  try {
    const url = `${server.url}/classify`;
    const headers = { 'content-type': 'image/jpeg' };
    const once = async () => {
      const t = performance.now();
      const res = await fetch(url, { method: 'POST', body: jpeg, headers });
      const body = (await res.json()) as { timings: { inference: number; total: number } };
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${JSON.stringify(body)}`);
      return { ms: performance.now() - t, server: body.timings };
    };
    for (let i = 0; i < 50; i++) await once();
    const seq = [];
    for (let i = 0; i < 300; i++) seq.push(await once());
    const e2e = seq.map((r) => r.ms);
    const inference = seq.map((r) => r.server.inference);

    const pgid = server.child.pid!;
    const memBefore = workerdRssMb(pgid);
    const samples: number[] = [];
    const timer = setInterval(() => samples.push(workerdRssMb(pgid)), 500);
    const load = await autocannon({
      url,
      method: 'POST',
      body: jpeg,
      headers,
      connections: 8,
      amount: LOAD_REQUESTS,
      timeout: 60,
    });
    clearInterval(timer);
    const memAfter = workerdRssMb(pgid);
    const again = await autocannon({
      url,
      method: 'POST',
      body: jpeg,
      headers,
      connections: 8,
      amount: LOAD_REQUESTS,
      timeout: 60,
    });
    const memAfterAgain = workerdRssMb(pgid);

    const nativeMedian = pct(native, 50);
    const result = {
      bundle: {
        model: manifest.model.id,
        precision: manifest.files.onnx?.int8 ? 'int8' : 'fp32',
        input: S,
        prototypes: manifest.prototypes.length,
        classes: manifest.classes.length,
      },
      image: { width: 500, height: 375, bytes: jpeg.length },
      inferenceMs: {
        // workerd's clock has millisecond steps: the mean over many requests is the finer estimate.
        workerdMean: round(mean(inference)),
        workerdMedian: round(pct(inference, 50)),
        nativeMedian: round(nativeMedian, 3),
        ratio: round(mean(inference) / nativeMedian),
      },
      endToEndMs: {
        p50: round(pct(e2e, 50)),
        p99: round(pct(e2e, 99)),
        serverTotalMean: round(mean(seq.map((r) => r.server.total))),
      },
      load: {
        requests: load.requests.total,
        concurrency: 8,
        errors: load.errors,
        timeouts: load.timeouts,
        non2xx: load.non2xx,
        latencyMs: { p50: load.latency.p50, p90: load.latency.p90, p99: load.latency.p99, max: load.latency.max },
        requestsPerSecond: round(load.requests.average, 1),
      },
      secondLoad: {
        errors: again.errors,
        timeouts: again.timeouts,
        non2xx: again.non2xx,
        latencyMs: { p50: again.latency.p50, p99: again.latency.p99 },
      },
      workerdRssMb: {
        beforeLoad: memBefore,
        duringMax: samples.length ? Math.max(...samples) : null,
        afterLoad: memAfter,
        afterSecondLoad: memAfterAgain,
      },
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await server.stop();
  }
}

await main();

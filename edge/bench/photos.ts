/**
 * Phone-photo benchmark: POST /classify with the photos people send, on Node
 * (the app in-process) and under `wrangler dev` (workerd, over HTTP), printing
 * p50/p99 of each step the response's `timings` reports plus the wall time:
 *   500x375 JPEG, 12 MP JPEG (baseline and progressive), 12 MP PNG, 4K WebP.
 * The photos are made with sharp at run time from one of the bundle's
 * pictures, enlarged, with a fine grain so they compress like camera files.
 *
 *   PROTOATLAS_BUNDLE=runs/demo/bundle node edge/bench/photos.ts [--runs 40] [--only node|workerd]
 *     [--base <dir>]   also run another checkout's edge/src (e.g. `git archive main edge/src | tar -x -C <dir>`,
 *                      <dir> inside this checkout so it finds node_modules), taking turns request by request
 *                      with this one, and print the ratios.
 *
 * The body limit is raised for the run (PROTOATLAS_MAX_BODY_BYTES) so the
 * 12 MP PNG is accepted, and the time budget, so a loaded machine does not
 * turn slow requests into 503s.
 */
import { mkdtemp, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp, { type Sharp } from 'sharp';
import { DEFAULT_CONFIG } from '../src/config.ts';
import { benchBundle } from './bench-bundle.ts';
import { startWranglerDev } from '../scripts/dev-server.ts';
import { answerHelp } from '../scripts/usage.ts';

answerHelp(
  import.meta,
  `usage: PROTOATLAS_BUNDLE=<bundle> node_modules/.bin/node edge/bench/photos.ts \\
         [--runs 40] [--only node|workerd] [--base <dir>]

POST /classify with phone-sized photos on Node and under wrangler dev: p50/p99 of every step.
  --base <dir>  also run another checkout's edge/src, taking turns request by request, and print the ratios`,
);

const STEPS = ['upload', 'decode', 'preprocess', 'inference', 'explain', 'total'] as const;
type Step = (typeof STEPS)[number];
const MAX_BODY = 64 * 1024 * 1024;

interface Photo {
  name: string;
  type: string;
  bytes: Uint8Array;
}

/** The p-th percentile of xs. */
export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
/** A figure for the tables; '-' for a step the server did not report (older code). */
const fmt = (v: number) => (Number.isNaN(v) ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(1));

/** A picture enlarged to w x h with a camera-like grain (JPEG/PNG sizes like real photos). */
async function photoPixels(source: string | null, w: number, h: number): Promise<Sharp> {
  const plain = { create: { width: 64, height: 48, channels: 3 as const, background: '#5080a0' } };
  const base = source ? sharp(source) : sharp(plain);
  const big = await base.resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).removeAlpha().raw().toBuffer();
  const noise = { type: 'gaussian' as const, mean: 128, sigma: 10 };
  const grey = { width: w, height: h, channels: 3 as const, background: '#808080', noise };
  const grain = await sharp({ create: grey }).raw().toBuffer();
  for (let i = 0; i < big.length; i++) big[i] = Math.max(0, Math.min(255, big[i] + grain[i] - 128));
  return sharp(big, { raw: { width: w, height: h, channels: 3 } });
}

export async function benchPhotos(source: string | null): Promise<Photo[]> {
  const small = await photoPixels(source, 500, 375);
  const p12 = await photoPixels(source, 4000, 3000);
  const k4 = await photoPixels(source, 3840, 2160);
  const u8 = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.length);
  return [
    { name: '500x375 JPEG', type: 'image/jpeg', bytes: u8(await small.jpeg({ quality: 90 }).toBuffer()) },
    { name: '12 MP JPEG', type: 'image/jpeg', bytes: u8(await p12.clone().jpeg({ quality: 90 }).toBuffer()) },
    {
      name: '12 MP JPEG progressive',
      type: 'image/jpeg',
      bytes: u8(await p12.clone().jpeg({ quality: 90, progressive: true }).toBuffer()),
    },
    { name: '12 MP PNG', type: 'image/png', bytes: u8(await p12.clone().png({ compressionLevel: 6 }).toBuffer()) },
    { name: '4K WebP', type: 'image/webp', bytes: u8(await k4.webp({ quality: 85 }).toBuffer()) },
  ];
}

type Post = (photo: Photo) => Promise<Response>;
interface Target {
  label: string;
  post: Post;
}
type Sample = { wall: number } & Record<Step, number>;
type Stat = { p50: number; p99: number };
type Row = { photo: string; bytes: number } & Record<Step | 'wall', Stat>;

/**
 * Times `runs` requests per photo and target after a warm-up, the targets
 * taking turns request by request, so a busy machine slows them alike.
 */
async function measure(targets: Target[], photos: Photo[], runs: number): Promise<Row[][]> {
  const rows: Row[][] = targets.map(() => []);
  for (const photo of photos) {
    const once = async (t: Target): Promise<Sample> => {
      const t0 = performance.now();
      const res = await t.post(photo);
      const body = (await res.json()) as { timings?: Record<Step, number>; error?: unknown };
      const wall = performance.now() - t0;
      if (res.status !== 200 || !body.timings) {
        throw new Error(`${t.label}, ${photo.name}: HTTP ${res.status} ${JSON.stringify(body)}`);
      }
      return { wall, ...body.timings };
    };
    // V8 compiles hot wasm in tiers: the first requests run the baseline code.
    for (let i = 0; i < 8; i++) for (const t of targets) await once(t);
    const samples: Sample[][] = targets.map(() => []);
    for (let i = 0; i < runs; i++) for (const [k, t] of targets.entries()) samples[k].push(await once(t));
    samples.forEach((xs, k) => {
      const stat = (key: Step | 'wall'): Stat => {
        const v = xs.map((x) => x[key] ?? Number.NaN);
        return { p50: pct(v, 50), p99: pct(v, 99) };
      };
      const steps = Object.fromEntries(STEPS.map((key) => [key, stat(key)])) as Record<Step, Stat>;
      rows[k].push({ photo: photo.name, bytes: photo.bytes.length, wall: stat('wall'), ...steps });
    });
  }
  return rows;
}

const COLUMNS = [...STEPS, 'wall'] as const;

function print(label: string, rows: Row[]): void {
  console.log(`\n${label}  (ms, p50 / p99)`);
  console.log('photo'.padEnd(24) + 'MB'.padStart(8) + COLUMNS.map((h) => h.padStart(14)).join(''));
  for (const r of rows) {
    const cells = COLUMNS.map((k) => `${fmt(r[k].p50)} / ${fmt(r[k].p99)}`.padStart(14));
    console.log(r.photo.padEnd(24) + (r.bytes / 1048576).toFixed(2).padStart(8) + cells.join(''));
  }
}

function printRatio(label: string, base: Row[], mine: Row[]): void {
  console.log(`\n${label}: p50 of the base code / p50 of this checkout (x faster)`);
  console.log('photo'.padEnd(24) + COLUMNS.map((h) => h.padStart(14)).join(''));
  base.forEach((b, i) => {
    const cells = COLUMNS.map((k) => `${(b[k].p50 / mine[i][k].p50).toFixed(2)}x`.padStart(14));
    console.log(b.photo.padEnd(24) + cells.join(''));
  });
}

/** The request init of a photo upload. */
const upload = (p: Photo): RequestInit => ({
  method: 'POST',
  body: p.bytes as Uint8Array<ArrayBuffer>,
  headers: { 'content-type': p.type },
});
const post =
  (url: string): Post =>
  (p) =>
    fetch(`${url}/classify`, upload(p));

async function main(): Promise<void> {
  const options = { runs: { type: 'string' }, only: { type: 'string' }, base: { type: 'string' } } as const;
  const { values } = parseArgs({ options });
  const runs = Number(values.runs ?? 40);
  const { dir: bundle, manifest } = await benchBundle();
  const picture = manifest.prototypes.find((p) => p.files)?.files?.source;
  const photos = await benchPhotos(picture ? join(bundle, picture) : null);
  const base = values.base ? resolve(process.env.INIT_CWD ?? process.cwd(), values.base) : null;
  const model = `${manifest.model.id}, input ${manifest.preprocessing.size}`;
  console.log(`bundle ${bundle} (${model}); ${runs} runs per photo after 8 warm-up`);
  if (base) console.log(`base code: ${base}/edge/src, taking turns with this checkout's`);

  if (values.only !== 'workerd') {
    const app = async (entry: string) => {
      const { createNodeApp } = (await import(entry)) as typeof import('../src/node.ts');
      const a = createNodeApp(bundle, { ...DEFAULT_CONFIG, maxBodyBytes: MAX_BODY, requestBudgetMs: 600_000 });
      return async (p: Photo) => a.fetch(new Request('http://bench/classify', upload(p)));
    };
    const targets: Target[] = [{ label: 'this checkout', post: await app('../src/node.ts') }];
    if (base) targets.push({ label: 'base', post: await app(join(base, 'edge/src/node.ts')) });
    const [mine, old] = await measure(targets, photos, runs);
    print(`Node ${process.version} (in-process), this checkout`, mine);
    if (old) {
      print(`Node ${process.version} (in-process), base`, old);
      printRatio('Node', old, mine);
    }
  }
  if (values.only !== 'node') {
    process.env.PROTOATLAS_MAX_BODY_BYTES = String(MAX_BODY);
    process.env.PROTOATLAS_REQUEST_BUDGET_MS = '600000';
    const servers = [await startWranglerDev(bundle)];
    try {
      if (base) {
        // Another path to the same bundle, so the second server stages its own copy.
        const link = join(await mkdtemp(join(tmpdir(), 'protoatlas-bench-')), 'bundle');
        await symlink(bundle, link);
        servers.push(await startWranglerDev(link, [join(base, 'edge/src/worker.ts')]));
      }
      const targets = servers.map((s, k) => ({ label: k ? 'base' : 'this checkout', post: post(s.url) }));
      const [mine, old] = await measure(targets, photos, runs);
      print('wrangler dev (workerd, HTTP), this checkout', mine);
      if (old) {
        print('wrangler dev (workerd, HTTP), base', old);
        printRatio('wrangler dev', old, mine);
      }
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  }
}

if (import.meta.main) await main();

import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { MANIFEST_FILE, parseManifest, type Manifest } from '@protoatlas/shared';
import { BASELINE_FILE, type BaselineRecord } from '../../trainer/src/analysis/baseline-record.ts';
import { buildBundle } from '../../trainer/src/bundle/build-bundle.ts';
import { loadDataset } from '../../trainer/src/data/load-dataset.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { tinyConfig, tinySyntheticData } from '../e2e/tiny-run.ts';
import { sourceKey } from '../support/source-key.ts';
import { cachedBuild } from '../e2e/cached-build.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const SITE = join(ROOT, 'site');
/** Screenshots and other artefacts a CI run keeps. */
export const ARTIFACTS = join(ROOT, 'artifacts', 'site');
const CACHE = join(ROOT, '.cache', 'site-fixture');
/** The code that builds the fixture: a change to any of it rebuilds the cached bundle. */
const SOURCES = ['trainer/src', 'shared/src', 'tests/site/fixture.ts', 'tests/e2e/tiny-run.ts'];

export interface Fixture {
  bundle: string;
  manifest: Manifest;
  /** Held-out synthetic photos with their true class ids. */
  photos: { path: string; classId: number }[];
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function readFixture(key: string): Promise<Fixture | null> {
  try {
    const meta = JSON.parse(await readFile(join(CACHE, 'fixture.json'), 'utf8'));
    if (meta.sourceKey !== key) return null;
    const bundle = join(CACHE, 'bundle');
    const manifest = parseManifest(JSON.parse(await readFile(join(bundle, MANIFEST_FILE), 'utf8')));
    if (!manifest.files.onnx?.fp32 || !(await exists(join(bundle, manifest.files.onnx.fp32.path)))) return null;
    if (!manifest.files.onnx.int8 || !(await exists(join(bundle, manifest.files.onnx.int8.path)))) return null; // built before bundles carried int8
    return {
      bundle,
      manifest,
      photos: meta.photos.map((p: { file: string; classId: number }) => ({
        path: join(CACHE, p.file),
        classId: p.classId,
      })),
    };
  } catch {
    return null; // missing or from an older schema: rebuild
  }
}

/**
 * A tiny trained bundle (3 synthetic species, 6 prototypes, ONNX export) and a
 * few test photos, built once (~30 s) into .cache/ and reused by later runs.
 * A lock directory keeps parallel test files from training twice.
 */
export async function tinyFixture(): Promise<Fixture> {
  const key = await sourceKey(ROOT, SOURCES);
  return cachedBuild(
    CACHE,
    () => readFixture(key),
    async () => {
      process.env.PROTOATLAS_QUIET = '1';
      const dir = await tinySyntheticData(3, 20, 4);
      const run = join(dir, 'run');
      const config = tinyConfig(join(dir, 'cache'), {
        backbone: { kind: 'small-cnn', inputSize: 56, channels: [16, 32, 32], convsPerStage: 1 },
        head: {
          addOn: [
            { channels: 32, activation: 'relu' },
            { channels: 16, activation: 'l2norm' },
          ],
          prototypesPerClass: 2,
        },
        joint: { epochs: 10, batchSize: 16 },
        pushTune: { epochs: 1, batchSize: 16, lr: { features: 0, addOn: 1e-3, prototypes: 0, lastLayer: 0 } },
        lastLayer: { epochs: 5, batchSize: 32, lr: 1e-2, l1: 1e-4, selectBest: true },
        // Pruning always applied, so the atlas shows pruned prototypes (the atlas test checks there are some).
        prune: { mode: 'on', k: 6, threshold: 3 },
        bundle: { enabled: true, nearest: 3, partMetrics: true },
      });
      await trainRun({ config, dataDir: join(dir, 'data'), outDir: run, resume: false, quiet: true });
      // A black box attached as `npm run bundle -- --baseline` attaches one, so the card shows the comparison.
      const dataset = await loadDataset(join(dir, 'data'), {
        valPerClass: config.data.valPerClass,
        metricsPerClass: config.data.metricsPerClass,
        seed: config.seed,
      });
      const val = dataset.splits.val;
      const record: BaselineRecord = {
        method: 'baseline: a black box for the tests (every third image wrong)',
        val: { n: val.length, top1: val.filter((_, i) => i % 3).length / val.length, top5: 1 },
        valPredictions: {
          ids: val.map((it) => it.id),
          labels: val.map((it) => it.label),
          predicted: val.map((it, i) => (i % 3 ? it.label : (it.label + 1) % dataset.classes.length)),
        },
      };
      await writeFile(join(dir, BASELINE_FILE), JSON.stringify(record));
      await buildBundle({ run, data: join(dir, 'data'), baseline: dir, quiet: true });
      await rm(CACHE, { recursive: true, force: true });
      await mkdir(join(CACHE, 'photos'), { recursive: true });
      await cp(join(run, 'bundle'), join(CACHE, 'bundle'), { recursive: true });
      const manifest = parseManifest(JSON.parse(await readFile(join(CACHE, 'bundle', MANIFEST_FILE), 'utf8')));
      const photos: { file: string; classId: number }[] = [];
      for (const c of manifest.classes) {
        const folder = join(dir, 'data', 'test', c.key);
        for (const f of (await readdir(folder)).sort().slice(0, 2)) {
          const file = join('photos', `${c.id}-${f}`);
          await cp(join(folder, f), join(CACHE, file));
          photos.push({ file, classId: c.id });
        }
      }
      await writeFile(join(CACHE, 'fixture.json'), JSON.stringify({ sourceKey: key, photos }));
      await rm(dir, { recursive: true, force: true });
      return (await readFixture(key))!;
    },
  );
}

/** `astro build` of the site from a bundle into outDir, as `npm run build --workspace site` does. */
export async function buildSite(
  bundle: string,
  outDir: string,
  env: Record<string, string> = {},
): Promise<{ ms: number; log: string }> {
  const t0 = Date.now();
  const astro = join(ROOT, 'node_modules', 'astro', 'bin', 'astro.mjs');
  const child = spawn(process.execPath, [astro, 'build', '--outDir', outDir], {
    cwd: SITE,
    env: { ...process.env, PROTOATLAS_BUNDLE: bundle, ASTRO_TELEMETRY_DISABLED: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  if (code !== 0) throw new Error(`astro build failed (${code}):\n${log.slice(-4000)}`);
  return { ms: Date.now() - t0, log };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.webp': 'image/webp',
  '.png': 'image/png',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
};

export interface Served {
  url: string;
  server: Server;
  requests: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 with a handler; every request is recorded. */
export async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
): Promise<Served> {
  const requests: Served['requests'] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    Promise.resolve(handler(req, res)).catch((e) => {
      res.statusCode = 500;
      res.end(String(e));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A static file server (directories serve index.html), like any static host. */
export function staticHandler(root: string, headers: OutgoingHttpHeaders = {}) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    let file = normalize(join(root, path));
    if (file !== root && !file.startsWith(root + sep)) return void res.writeHead(403).end();
    let s = await stat(file).catch(() => null);
    if (s?.isDirectory()) {
      file = join(file, 'index.html');
      s = await stat(file).catch(() => null);
    }
    if (!s?.isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': s.size,
      ...headers,
    });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  };
}

/** Debian's Chromium, headless, with no background traffic (this machine's network is closed). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
    ],
  });
}

/** Console errors, uncaught exceptions and failed or 4xx/5xx requests of a page. */
export function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  return problems;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * `npm start`: the whole product on this machine. Builds the default model
 * bundle if there is none (the synthetic demo, or $PROTOATLAS_BUNDLE when set),
 * builds the atlas, starts the edge API under wrangler dev (real workerd) and
 * serves the atlas, then prints the URLs and a curl example. Ctrl-C stops all.
 *
 *   npm start                                   # demo bundle in runs/demo/bundle
 *   PROTOATLAS_BUNDLE=runs/cub200/bundle npm start
 *   EDGE_PORT=8787 SITE_PORT=4321 npm start
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const edgePort = Number(process.env.EDGE_PORT ?? 8787);
const sitePort = Number(process.env.SITE_PORT ?? 4321);
const host = '127.0.0.1';
const children: ChildProcess[] = [];

function run(
  args: string[],
  env: Record<string, string> = {},
  opts: { background?: boolean } = {},
): Promise<number> | ChildProcess {
  const child = spawn(NPM, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: opts.background ? ['ignore', 'pipe', 'pipe'] : 'inherit',
  });
  if (opts.background) {
    children.push(child);
    return child;
  }
  return new Promise((res) => child.on('exit', (code) => res(code ?? 1)));
}

async function waitFor(url: string, label: string, child: ChildProcess, timeoutMs = 120_000): Promise<void> {
  const start = Date.now();
  let exited = false;
  let reason = '';
  child.on('exit', () => (exited = true));
  while (Date.now() - start < timeoutMs) {
    if (exited) throw new Error(`${label} stopped while starting (see its output above)`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
      // A health check's reason for 503 (e.g. a damaged bundle), shown if it never becomes ready.
      reason = ((await r.json().catch(() => null)) as { error?: string } | null)?.error ?? reason;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${label} did not answer ${url} within ${timeoutMs / 1000} s${reason ? `: ${reason}` : ''}`);
}

function prefix(child: ChildProcess, tag: string): void {
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line.trim()) process.stderr.write(`[${tag}] ${line}\n`);
    });
  }
}

function sampleImage(): string | null {
  // A test image from the built-in synthetic dataset, if it is there.
  const cache = join(ROOT, '.cache');
  if (!existsSync(cache)) return null;
  for (const d of readdirSync(cache).filter((n) => n.startsWith('synthetic-birds-'))) {
    const test = join(cache, d, 'test');
    if (!existsSync(test)) continue;
    const cls = readdirSync(test)[0];
    const img = cls ? readdirSync(join(test, cls))[0] : undefined;
    if (img) return join(test, cls, img);
  }
  return null;
}

const USAGE = `usage: npm start

Builds the demo bundle if there is none (or uses $PROTOATLAS_BUNDLE), builds the atlas, starts the edge API
under wrangler dev and serves the atlas. Ports: EDGE_PORT (default 8787), SITE_PORT (default 4321).`;

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log(USAGE);
    return;
  }
  const bundle = resolve(ROOT, process.env.PROTOATLAS_BUNDLE ?? 'runs/demo/bundle');
  if (!existsSync(join(bundle, 'manifest.json'))) {
    if (process.env.PROTOATLAS_BUNDLE)
      throw new Error(`${bundle} has no manifest.json: build it with npm run bundle --workspace trainer -- <run dir>`);
    console.error('protoatlas: no demo bundle yet: training the demo (synthetic birds, a few minutes)');
    if ((await run(['run', 'demo'])) !== 0) throw new Error('npm run demo failed');
  }
  const api = `http://${host}:${edgePort}/classify`;
  console.error(`protoatlas: building the atlas from ${relative(ROOT, bundle) || bundle}`);
  if ((await run(['run', 'build', '--workspace', 'site'], { PROTOATLAS_BUNDLE: bundle, PROTOATLAS_API: api })) !== 0)
    throw new Error('atlas build failed');

  const edge = run(
    ['run', 'dev', '--workspace', 'edge', '--', '--port', String(edgePort)],
    { PROTOATLAS_BUNDLE: bundle, PROTOATLAS_CORS_ORIGINS: `http://${host}:${sitePort},http://localhost:${sitePort}` },
    { background: true },
  ) as ChildProcess;
  prefix(edge, 'edge');
  const site = run(
    ['run', 'preview', '--workspace', 'site', '--', '--port', String(sitePort), '--host', host],
    {},
    { background: true },
  ) as ChildProcess;
  prefix(site, 'atlas');
  await Promise.all([
    waitFor(`http://${host}:${edgePort}/healthz`, 'the edge API (wrangler dev)', edge),
    waitFor(`http://${host}:${sitePort}/`, 'the atlas preview', site),
  ]);

  const img = sampleImage();
  console.log(
    [
      '',
      'ProtoAtlas is running:',
      `  atlas    http://${host}:${sitePort}/          (try it: http://${host}:${sitePort}/try/)`,
      `  edge API http://${host}:${edgePort}/          (OpenAPI: /openapi.json, model card: /model)`,
      '',
      'Classify a photo:',
      `  curl -X POST --data-binary @${img ? relative(process.cwd(), img) : 'bird.jpg'} -H 'Content-Type: image/${img?.endsWith('.png') ? 'png' : 'jpeg'}' '${api}?top=3&evidence=3'`,
      '',
      'Ctrl-C stops both.',
    ].join('\n'),
  );
}

function shutdown(code: number): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  process.exit(code);
}
process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));
main().catch((e: unknown) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  shutdown(1);
});

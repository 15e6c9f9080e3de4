/**
 * The edge's limits and refusals on Node, in-process: Retry-After, the
 * per-request time budget, and a bundle whose model does not match its manifest.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, type Manifest } from '@protoatlas/shared';
import { createApp } from '../../edge/src/app.ts';
import { RequestBudget } from '../../edge/src/budget.ts';
import { DEFAULT_CONFIG, readConfig } from '../../edge/src/config.ts';
import { ApiError } from '../../edge/src/errors.ts';
import { directoryAssetStore } from '../../edge/src/node-assets.ts';
import { createNodeApp, nodeWasmModules } from '../../edge/src/node.ts';
import { memoryRateLimiter } from '../../edge/src/rate-limit.ts';
import { testImages } from './helpers/images.ts';
import { ensureTestBundle } from './helpers/test-bundle.ts';

const NODE_ENTRY = fileURLToPath(new URL('../../edge/src/node.ts', import.meta.url));

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, code: body.error.code, message: body.error.message };
}

describe('memoryRateLimiter: Retry-After', () => {
  it('says when the next token comes back', async () => {
    let t = 0;
    const rl = memoryRateLimiter(3, () => t); // a token every 20 s
    for (let i = 0; i < 3; i++) expect((await rl.limit({ key: 'a' })).success).toBe(true);
    expect(await rl.limit({ key: 'a' })).toEqual({ success: false, retryAfterSeconds: 20 });
    t += 15_500;
    expect(await rl.limit({ key: 'a' })).toEqual({ success: false, retryAfterSeconds: 5 });
    t += 4_500;
    expect((await rl.limit({ key: 'a' })).success).toBe(true);
  });
});

describe('RequestBudget', () => {
  it('passes while time is left and refuses with 503 over_time_budget and Retry-After once it is spent', () => {
    let t = 1000;
    const b = new RequestBudget(50, () => t);
    t += 49;
    expect(() => b.check('decoding')).not.toThrow();
    t += 1;
    let err: unknown;
    try {
      b.check('decoding');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 503, code: 'over_time_budget', headers: { 'retry-after': '1' } });
    expect((err as Error).message).toMatch(
      /ran out of its 50 ms time budget at step "decoding" \(PROTOATLAS_REQUEST_BUDGET_MS\)/,
    );
  });

  it('cuts a wait short when the budget runs out first, and lets a prompt one through', async () => {
    const b = new RequestBudget(30);
    await expect(b.within(Promise.resolve(7), 'loading the model')).resolves.toBe(7);
    await expect(b.within(new Promise(() => {}), 'waiting for the model')).rejects.toMatchObject({
      code: 'over_time_budget',
      message: expect.stringContaining('"waiting for the model"'),
    });
  });

  it('is read from PROTOATLAS_REQUEST_BUDGET_MS, and a bad value fails at start-up', () => {
    expect(readConfig({}).requestBudgetMs).toBe(DEFAULT_CONFIG.requestBudgetMs);
    expect(readConfig({ PROTOATLAS_REQUEST_BUDGET_MS: '2500' }).requestBudgetMs).toBe(2500);
    expect(() => readConfig({ PROTOATLAS_REQUEST_BUDGET_MS: 'soon' })).toThrow(
      /PROTOATLAS_REQUEST_BUDGET_MS must be a number >= 1, got "soon"/,
    );
  });
});

describe('edge on Node: budget and bundle integrity', () => {
  let bundle: string;
  let manifest: Manifest;
  let png: Uint8Array;

  beforeAll(async () => {
    const tb = await ensureTestBundle();
    bundle = tb.dir;
    manifest = parseManifest(JSON.parse(await readFile(join(bundle, 'manifest.json'), 'utf8')));
    png = (await testImages(tb.dataDir))[0].png;
  }, 300_000);

  const classify = (app: { request: (p: string, i: RequestInit) => Response | Promise<Response> }) =>
    app.request('/classify', {
      method: 'POST',
      body: png as Uint8Array<ArrayBuffer>,
      headers: { 'content-type': 'image/png' },
    });

  it('past its time budget a classification answers 503 over_time_budget; the next one succeeds', async () => {
    let t = 0;
    let slow = true;
    // Every reading of a slow clock is 400 ms later than the last: the budget of 1 s runs out mid-request.
    const now = () => (slow ? (t += 400) : t);
    const app = createApp({
      assets: directoryAssetStore(bundle),
      wasm: nodeWasmModules(),
      config: { ...DEFAULT_CONFIG, requestBudgetMs: 1000 },
      now,
    });
    const res = await classify(app);
    expect(res.headers.get('retry-after')).toBe('1');
    const err = await errorOf(res);
    expect(err).toMatchObject({ status: 503, code: 'over_time_budget' });
    expect(err.message).toMatch(/1000 ms time budget at step "/);
    slow = false;
    expect((await classify(app)).status).toBe(200);
  });

  async function damagedCopy(): Promise<string> {
    const dir = join(await mkdtemp(join(tmpdir(), 'protoatlas-edge-bad-')), 'bundle');
    await cp(bundle, dir, { recursive: true });
    const model = join(dir, manifest.files.onnx!.int8!.path);
    const bytes = await readFile(model);
    bytes[bytes.length - 100] ^= 0x01;
    await writeFile(model, bytes);
    return dir;
  }

  it('a model that does not match the manifest: /healthz 503 with the reason, classify and the file 503', async () => {
    const app = createNodeApp(await damagedCopy(), DEFAULT_CONFIG);
    const health = await app.request('/healthz');
    expect(health.status).toBe(503);
    const h = (await health.json()) as { ok: boolean; error: string; model: { id: string } };
    expect(h.ok).toBe(false);
    expect(h.model.id).toBe(manifest.model.id);
    const int8 = manifest.files.onnx!.int8!;
    expect(h.error).toMatch(
      new RegExp(`model file ${int8.path} has sha256 [0-9a-f]{64}, the manifest says ${int8.sha256}: .*--verify`),
    );
    const c = await errorOf(await classify(app));
    expect(c).toMatchObject({ status: 503, code: 'model_unavailable' });
    expect(c.message).toBe(h.error);
    expect((await errorOf(await app.request(`/bundle/${manifest.files.onnx!.int8!.path}`))).code).toBe(
      'model_unavailable',
    );
    // The atlas side of the bundle is still served.
    expect((await app.request('/model')).status).toBe(200);
  });

  it('the Node server refuses to start on such a bundle, saying why', async () => {
    const dir = await damagedCopy();
    const r = await promisify(execFile)(process.execPath, [NODE_ENTRY, '--port', '0'], {
      env: { ...process.env, PROTOATLAS_BUNDLE: dir },
      timeout: 60_000,
    }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(r?.code).toBe(1);
    expect(r?.stderr).toMatch(/refusing to serve .*: model file onnx\/model\.int8\.onnx has sha256/);
  });

  it('the Node server refuses a port that is not one, before reading the bundle', async () => {
    for (const [args, env, from] of [
      [['--port', 'http'], {}, '--port'],
      [[], { PORT: '70000' }, '$PORT'],
    ] as const) {
      const r = await promisify(execFile)(process.execPath, [NODE_ENTRY, ...args], {
        env: { ...process.env, ...env, PROTOATLAS_BUNDLE: bundle },
        timeout: 60_000,
      }).then(
        () => null,
        (e: { code: number; stderr: string }) => e,
      );
      expect(r?.code).toBe(2);
      expect(r?.stderr).toContain(`the port must be an integer 0-65535 (got "${args[1] ?? env.PORT}" from ${from})`);
    }
  });

  it('a whole bundle is healthy', async () => {
    const res = await createNodeApp(bundle, DEFAULT_CONFIG).request('/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, error: null, model: { id: manifest.model.id } });
  });
});

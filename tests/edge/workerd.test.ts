/**
 * The Worker in workerd (wrangler dev), over HTTP: the same suite as on Node.
 *
 * Why not @cloudflare/vitest-pool-workers: it would need a workers project in
 * the root vitest config and brings its own pinned wrangler/miniflare; running
 * the real `npm run dev` also tests what ships (wrangler's bundling, the .wasm
 * module imports, the static-assets staging).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { apiSuite, SUITE_RATE_LIMIT } from './helpers/api-suite.ts';
import { testImages } from './helpers/images.ts';
import { ensureTestBundle } from './helpers/test-bundle.ts';
import { startWranglerDev, type DevServer } from '../../edge/scripts/dev-server.ts';

let server: DevServer | null = null;

apiSuite('edge API in workerd (wrangler dev)', async (bundleDir) => {
  server = await startWranglerDev(bundleDir, ['--var', `PROTOATLAS_RATE_LIMIT_PER_MINUTE:${SUITE_RATE_LIMIT}`]);
  const base = server.url;
  return (path, init) => fetch(`${base}${path}`, init);
});

describe('edge API in workerd: the server', () => {
  it('started, answered, and logged no fault while the suite ran', () => {
    // Without a server the suite above failed already; this check must not pass on an empty log.
    expect(server, 'wrangler dev never started').not.toBeNull();
    const log = server!.output();
    expect(log).toMatch(/Ready on http/);
    expect(log).not.toMatch(/"level":"error"|Uncaught|exceeded/);
  });
});

describe('edge API in workerd: the time budget', () => {
  it('a classification past PROTOATLAS_REQUEST_BUDGET_MS answers 503 over_time_budget with Retry-After', async () => {
    // The suite's server is done; this one shares its staged bundle, so it starts after that one stops.
    await server?.stop();
    const tb = await ensureTestBundle();
    server = await startWranglerDev(tb.dir, ['--var', 'PROTOATLAS_REQUEST_BUDGET_MS:1']);
    const png = (await testImages(tb.dataDir))[0].png;
    // The first classification loads the model (I/O, so workerd's clock moves): far over 1 ms.
    const init = { method: 'POST', body: png as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'image/png' } };
    const res = await fetch(`${server.url}/classify`, init);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect({ status: res.status, code: body.error.code }).toEqual({ status: 503, code: 'over_time_budget' });
    expect(res.headers.get('retry-after')).toBe('1');
    expect(body.error.message).toMatch(/ran out of its 1 ms time budget at step "/);
  });
});

afterAll(async () => {
  await server?.stop();
}, 30_000);

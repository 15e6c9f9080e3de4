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
import { startWranglerDev, type DevServer } from '../../edge/scripts/dev-server.ts';

let server: DevServer | null = null;

apiSuite('edge API in workerd (wrangler dev)', async (bundleDir) => {
  server = await startWranglerDev(bundleDir, ['--var', `PROTOATLAS_RATE_LIMIT_PER_MINUTE:${SUITE_RATE_LIMIT}`]);
  const base = server.url;
  return (path, init) => fetch(`${base}${path}`, init);
});

describe('edge API in workerd: the server', () => {
  it('logged no fault while the suite ran', () => {
    expect(server?.output() ?? '').not.toMatch(/"level":"error"|Uncaught|exceeded/);
  });
});

afterAll(async () => {
  await server?.stop();
}, 30_000);

/** The edge app on Node (the `npm run start` app, called in-process). */
import { describe, expect, it } from 'vitest';
import { createApp } from '../../edge/src/app.ts';
import { DEFAULT_CONFIG } from '../../edge/src/config.ts';
import { createNodeApp, nodeWasmModules } from '../../edge/src/node.ts';
import { apiSuite, SUITE_RATE_LIMIT } from './helpers/api-suite.ts';

apiSuite('edge API on Node', async (bundleDir) => {
  const app = createNodeApp(bundleDir, { ...DEFAULT_CONFIG, rateLimitPerMinute: SUITE_RATE_LIMIT });
  return async (path, init) => app.request(path, init);
});

describe('edge API on Node: faults', () => {
  it('turns a real fault into a 500 with the request id, logged', async () => {
    const logged: Record<string, unknown>[] = [];
    const app = createApp({
      assets: { fetch: async () => Promise.reject(new Error('disk on fire')) },
      wasm: nodeWasmModules(),
      log: (e) => logged.push(e),
    });
    const res = await app.request('/model');
    const body = (await res.json()) as { error: { code: string; requestId: string } };
    expect(res.status).toBe(500);
    expect(body.error.code).toBe('internal_error');
    expect(body.error.requestId).toBe(res.headers.get('x-request-id'));
    expect(logged).toEqual([
      expect.objectContaining({
        level: 'error',
        requestId: body.error.requestId,
        path: '/model',
        message: 'disk on fire',
      }),
    ]);
  });

  it('refuses a streamed body past 10 MB while reading it', async () => {
    const app = createApp({
      assets: { fetch: async () => new Response(null, { status: 404 }) },
      wasm: nodeWasmModules(),
    });
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(ctl) {
        sent += 1 << 20;
        ctl.enqueue(new Uint8Array(1 << 20));
        if (sent > 64 << 20) ctl.close();
      },
    });
    const res = await app.request('/classify', {
      method: 'POST',
      body,
      headers: { 'content-type': 'image/jpeg' },
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    // It stopped reading soon after the limit rather than buffering everything.
    expect(sent).toBeLessThan(16 << 20);
  });
});

import { Hono } from 'hono';

/**
 * The edge API. This first version answers health checks and refuses
 * /classify clearly until a model bundle is wired in (issue 5).
 */
export function createApp(opts: { bundleName?: string } = {}) {
  const app = new Hono();
  app.get('/health', (c) => c.json({ ok: true, bundle: opts.bundleName ?? null }));
  app.post('/classify', (c) =>
    c.json({ error: 'no model bundle is loaded yet: train one with `npm run train --workspace trainer` and set PROTOATLAS_BUNDLE' }, 503),
  );
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${new URL(c.req.url).pathname}` }, 404));
  return app;
}

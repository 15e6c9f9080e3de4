/**
 * The edge API as one Hono app, the same on Workers and Node: each entry
 * (worker.ts, node.ts) supplies the bundle's files, the wasm modules and the
 * settings; everything else is here.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { cors } from 'hono/cors';
import { ASSET_PREFIX, serveAsset, type AssetStore } from './assets.ts';
import { modelCard, prototypeDetails } from './bundle.ts';
import { chooseModelFile } from './model-session.ts';
import { classify } from './classify.ts';
import { DEFAULT_CONFIG, type EdgeConfig } from './config.ts';
import { ApiError, errorBody, type ErrorStatus } from './errors.ts';
import { homePage } from './home.ts';
import { classifyRoute, healthRoute, modelRoute, prototypeRoute } from './openapi.ts';
import { memoryRateLimiter, type RateLimiter } from './rate-limit.ts';
import { REQUEST_ID_HEADER, requestId, type RequestIdEnv } from './request-id.ts';
import { Runtime, type WasmModules } from './runtime.ts';
import { ortWasmMemoryBytes } from './ort-runtime.ts';

export interface AppOptions {
  assets: AssetStore;
  /** The four precompiled wasm modules (fetched once). */
  wasm: () => Promise<WasmModules>;
  config?: EdgeConfig;
  /** A shared limiter (the Workers binding); by default one in memory when the config sets a rate. */
  rateLimiter?: RateLimiter | null;
  /** Who a request is from, for the rate limit. */
  clientKey?: (c: Context) => string;
  /** Structured log lines (500s); console.error by default. */
  log?: (entry: Record<string, unknown>) => void;
  /** The clock of the per-request time budget (tests give their own). */
  now?: () => number;
}

const defaultClientKey = (c: Context) => c.req.header('cf-connecting-ip') ?? 'anonymous';

export function createApp(opts: AppOptions) {
  const config = opts.config ?? DEFAULT_CONFIG;
  const runtime = new Runtime(opts.assets, opts.wasm);
  const log = opts.log ?? ((e) => console.error(JSON.stringify(e)));
  const rateLimiter =
    opts.rateLimiter !== undefined
      ? opts.rateLimiter
      : config.rateLimitPerMinute > 0
        ? memoryRateLimiter(config.rateLimitPerMinute)
        : null;
  const clientKey = opts.clientKey ?? defaultClientKey;

  const app = new OpenAPIHono<RequestIdEnv>({
    // Validation failures of documented routes: a bad path id is a missing prototype, anything else a bad query.
    defaultHook: (result) => {
      if (result.success) return;
      if (result.target === 'param') throw new ApiError('not_found', 'no such prototype: ids are whole numbers');
      throw new ApiError('bad_query', result.error.issues.map((i) => i.message).join('; '));
    },
  });

  app.use('*', requestId);
  app.use(
    '*',
    cors({
      origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
      allowMethods: ['GET', 'HEAD', 'POST', 'OPTIONS'],
      allowHeaders: ['Content-Type', REQUEST_ID_HEADER],
      exposeHeaders: [REQUEST_ID_HEADER],
      maxAge: 86_400,
    }),
  );

  app.onError((err, c) => {
    const id = c.get('requestId');
    if (err instanceof ApiError) {
      for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      return c.json(errorBody(err.code, err.message, id), err.status as ErrorStatus);
    }
    log({
      level: 'error',
      requestId: id,
      method: c.req.method,
      path: new URL(c.req.url).pathname,
      message: err instanceof Error ? err.message : String(err),
      stack: err instanceof Error ? err.stack : undefined,
    });
    return c.json(errorBody('internal_error', `internal error; quote request id ${id}`, id), 500);
  });
  app.notFound((c) =>
    c.json(errorBody('not_found', `no route ${c.req.method} ${new URL(c.req.url).pathname}`, c.get('requestId')), 404),
  );

  const origin = (c: Context) => new URL(c.req.url).origin;

  app.get('/', async (c) => {
    const b = await runtime.getBundle().catch(() => null);
    const m = b
      ? { id: b.manifest.model.id, version: b.manifest.model.version, classes: b.manifest.classes.length }
      : null;
    return c.html(homePage(origin(c), m));
  });

  // Healthy = the bundle loads and its model matches the manifest; else 503 with the reason.
  app.openapi(healthRoute, async (c) => {
    const b = await runtime.getBundle().catch((e: unknown) => e as Error);
    const problem =
      b instanceof Error
        ? b
        : await runtime.checkModel().then(
            () => null,
            (e: unknown) => e as Error,
          );
    const model = b instanceof Error ? null : { id: b.manifest.model.id, version: b.manifest.model.version };
    const body = {
      ok: !problem,
      model,
      wasmMemoryBytes: ortWasmMemoryBytes(),
      jpegDecoderPeakBytes: runtime.jpegDecoderPeakBytes(),
      webpDecoderPeakBytes: runtime.webpDecoderPeakBytes(),
      error: problem?.message ?? null,
    };
    return problem ? c.json(body, 503) : c.json(body, 200);
  });

  app.openapi(modelRoute, async (c) => c.json(modelCard(await runtime.getBundle(), origin(c)), 200));

  app.openapi(prototypeRoute, async (c) => {
    const b = await runtime.getBundle();
    const id = Number(c.req.valid('param').id);
    const p = b.manifest.prototypes[id];
    if (!p)
      throw new ApiError(
        'not_found',
        `no prototype ${id}: this model has ${b.manifest.prototypes.length} (0-${b.manifest.prototypes.length - 1})`,
      );
    return c.json(prototypeDetails(b, p, origin(c)), 200);
  });

  app.openAPIRegistry.registerPath(classifyRoute);
  app.post('/classify', (c) => classify(c, { runtime, config, rateLimiter, clientKey, now: opts.now }));

  app.doc31('/openapi.json', (c) => ({
    openapi: '3.1.0',
    info: {
      title: 'ProtoAtlas edge API',
      version: '1',
      description: 'Bird identification explained with prototypes (ProtoPNet, "This Looks Like That").',
    },
    servers: [{ url: origin(c) }],
  }));

  app.on(['GET', 'HEAD'], `${ASSET_PREFIX}*`, async (c) => {
    let path: string;
    try {
      path = decodeURIComponent(new URL(c.req.url).pathname.slice(ASSET_PREFIX.length));
    } catch {
      throw new ApiError('not_found', 'malformed file path');
    }
    const bundle = await runtime.getBundle().catch(() => null);
    // The model file is served (to the widget) only once it has matched the manifest.
    if (bundle && path === chooseModelFile(bundle.manifest)?.path) await runtime.checkModel();
    const record = bundle?.manifest.files.integrity?.find((f) => f.path === path) ?? null;
    const res = await serveAsset(opts.assets, path, c.req.raw, { maxAge: config.assetMaxAge, record });
    if (!res) throw new ApiError('not_found', `no bundle file ${path}`);
    return res;
  });

  return app;
}

export type EdgeApp = ReturnType<typeof createApp>;

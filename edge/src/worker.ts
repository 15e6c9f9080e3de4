/**
 * Cloudflare Workers entry (wrangler.toml `main`). The wasm runtimes are module
 * imports, compiled when the Worker is deployed (workerd forbids run-time
 * compilation); the bundle's files come from the static-assets binding.
 */
import ortWasm from 'onnxruntime-web/ort-wasm-simd-threaded.wasm';
import jpegWasm from '@protoatlas/shared/wasm/jpeg-decode.wasm';
import webpWasm from '@protoatlas/shared/wasm/webp-decode.wasm';
import { createApp, type EdgeApp } from './app.ts';
import { workersAssetStore } from './assets.ts';
import { readConfig } from './config.ts';
import type { RateLimiter } from './rate-limit.ts';

export interface Env {
  ASSETS: { fetch: (req: Request) => Promise<Response> };
  /** Optional Workers rate-limiting binding, shared across isolates. */
  CLASSIFY_RATE_LIMITER?: RateLimiter;
  [key: string]: unknown;
}

const modules = { ort: ortWasm, jpeg: jpegWasm, webp: webpWasm };

// One app per isolate: env is only known at the first request.
let app: EdgeApp | null = null;

export default {
  fetch(req: Request, env: Env, ctx: unknown): Response | Promise<Response> {
    app ??= createApp({
      assets: workersAssetStore(env.ASSETS),
      wasm: async () => modules,
      config: readConfig(env),
      rateLimiter: env.CLASSIFY_RATE_LIMITER,
    });
    return app.fetch(req, env, ctx as never);
  },
};

/**
 * Node entry (`npm run start --workspace edge`): the same app on
 * @hono/node-server, reading the bundle directory named by PROTOATLAS_BUNDLE.
 * Options: --port (default 8788, or PORT) and --host (default 127.0.0.1).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { serve } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { createApp } from './app.ts';
import { readConfig, type EdgeConfig } from './config.ts';
import { directoryAssetStore } from './node-assets.ts';
import type { WasmModules } from './runtime.ts';

const require = createRequire(import.meta.url);

/** The wasm files the Worker imports, compiled once from node_modules. */
export function nodeWasmModules(): () => Promise<WasmModules> {
  let loaded: Promise<WasmModules> | null = null;
  const compile = async (spec: string) => WebAssembly.compile(await readFile(require.resolve(spec)));
  return () =>
    (loaded ??= (async () => {
      const [ort, jpeg, webp] = await Promise.all([
        compile('onnxruntime-web/ort-wasm-simd-threaded.wasm'),
        compile('@protoatlas/shared/wasm/jpeg-decode.wasm'),
        compile('@protoatlas/shared/wasm/webp-decode.wasm'),
      ]);
      return { ort, jpeg, webp };
    })());
}

/** The app on Node, for a bundle directory. */
export function createNodeApp(bundleDir: string, config?: EdgeConfig) {
  return createApp({
    assets: directoryAssetStore(bundleDir),
    wasm: nodeWasmModules(),
    config: config ?? readConfig(process.env),
    clientKey: (c) => {
      try {
        return getConnInfo(c).remote.address ?? 'anonymous';
      } catch {
        return 'anonymous';
      }
    },
  });
}

async function main(): Promise<void> {
  const usage =
    'usage: PROTOATLAS_BUNDLE=<bundle dir> npm run start --workspace edge [-- --port 8788] [--host 127.0.0.1]\n\n' +
    'Serves the edge API on Node for a bundle (port: --port, else $PORT, else 8788).';
  let values: { port?: string; host?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: { port: { type: 'string' }, host: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    return;
  }
  const bundle = process.env.PROTOATLAS_BUNDLE;
  if (!bundle) {
    console.error('PROTOATLAS_BUNDLE must name a model bundle directory (e.g. runs/demo/bundle)');
    process.exit(2);
  }
  const portText = values.port ?? process.env.PORT ?? '8788';
  const port = Number(portText);
  if (!(portText.trim() !== '' && Number.isInteger(port) && port >= 0 && port <= 65535)) {
    console.error(`the port must be an integer 0-65535 (got "${portText}" from ${values.port ? '--port' : '$PORT'})`);
    process.exit(2);
  }
  const hostname = values.host ?? '127.0.0.1';
  const app = createNodeApp(resolve(bundle));
  // Refuse, before listening, a bundle the service could not answer with (the same check as /healthz).
  const health = (await (await app.request('/healthz')).json()) as { ok: boolean; error: string | null };
  if (!health.ok) {
    console.error(`ProtoAtlas edge: refusing to serve ${resolve(bundle)}: ${health.error}`);
    process.exit(1);
  }
  serve({ fetch: app.fetch, port, hostname }, (info) =>
    console.log(`ProtoAtlas edge on http://${hostname}:${info.port} (bundle ${resolve(bundle)})`),
  );
}

if (import.meta.main) await main();

import { copyFile, cp, mkdir, mkdtemp, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AstroIntegration } from 'astro';
import { contentTypeFor, MANIFEST_FILE } from '@protoatlas/shared';
import { bundleDir, BUNDLE_URL_DIR } from './lib/atlas.ts';
import { buildWidget } from '../widget/build.ts';

/** Bundle parts the site serves: pictures for the pages, the manifest and ONNX model for the widget's local mode. */
const SERVED = [MANIFEST_FILE, 'prototypes', 'onnx'];

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Copy what the site serves of the bundle into <out>/bundle/ (never its training model or backbone). */
export async function copyBundle(from: string, outDir: string): Promise<void> {
  const to = join(outDir, BUNDLE_URL_DIR);
  await mkdir(to, { recursive: true });
  await Promise.all(
    SERVED.map(async (name) => {
      const src = join(from, name);
      if (!(await exists(src))) return;
      if (name === MANIFEST_FILE) await copyFile(src, join(to, name));
      else await cp(src, join(to, name), { recursive: true });
    }),
  );
}

/**
 * Wires the bundle into Astro: `astro build` copies its pictures and model next
 * to the pages and builds the widget; `astro dev` serves both from their sources.
 */
export function protoatlas(): AstroIntegration {
  let base = '/';
  return {
    name: 'protoatlas',
    hooks: {
      'astro:config:setup': ({ config, command }) => {
        base = config.base.endsWith('/') ? config.base : `${config.base}/`;
        if (command === 'build' || command === 'dev') bundleDir(); // fail early with a clear message
      },
      'astro:server:setup': async ({ server }) => {
        const bundle = bundleDir();
        const widgetDir = await mkdtemp(join(tmpdir(), 'protoatlas-widget-'));
        await buildWidget(widgetDir);
        const roots: [string, string][] = [
          [`${base}${BUNDLE_URL_DIR}`, bundle],
          [`${base}widget/`, widgetDir],
        ];
        server.middlewares.use((req, res, next) => {
          const path = decodeURIComponent((req.url ?? '').split('?')[0]);
          const hit = roots.find(([prefix]) => path.startsWith(prefix));
          if (!hit) return next();
          const file = normalize(join(hit[1], path.slice(hit[0].length)));
          if (!file.startsWith(hit[1] + sep)) return next();
          stat(file).then(
            (s) => {
              if (!s.isFile()) return next();
              res.setHeader('content-type', contentTypeFor(file));
              res.setHeader('content-length', s.size);
              createReadStream(file).pipe(res);
            },
            () => next(),
          );
        });
      },
      'astro:build:done': async ({ dir, logger }) => {
        const out = fileURLToPath(dir);
        const t0 = Date.now();
        const [, widget] = await Promise.all([copyBundle(bundleDir(), out), buildWidget(join(out, 'widget'))]);
        logger.info(
          `bundle copied and widget built in ${Date.now() - t0} ms; widget ${(widget.bytes / 1024).toFixed(1)} KB (${(widget.gzipBytes / 1024).toFixed(1)} KB gzip)`,
        );
      },
    },
  };
}

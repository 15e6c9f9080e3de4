import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { JPEG_WASM_FILE } from './src/photo-pixels.ts';

export const WIDGET_FILE = 'protoatlas-classifier.js';

/** onnxruntime-web files local mode may load: the wasm-only build, the WebGPU build, and their binaries. */
export const ORT_FILES = [
  'ort.wasm.bundle.min.mjs',
  'ort-wasm-simd-threaded.wasm',
  'ort-wasm-simd-threaded.mjs',
  'ort.webgpu.bundle.min.mjs',
  'ort-wasm-simd-threaded.asyncify.wasm',
  'ort-wasm-simd-threaded.asyncify.mjs',
];

const here = dirname(fileURLToPath(import.meta.url));

export interface WidgetBuild {
  file: string;
  bytes: number;
  gzipBytes: number;
}

/**
 * Build the widget into outDir: one classic script (embeddable from any origin
 * without CORS on the script itself), the shared JPEG decoder (jpeg-decode.wasm)
 * and onnxruntime-web's files under ort/, which the script loads only in local mode.
 */
export async function buildWidget(outDir: string, opts: { ort?: boolean } = {}): Promise<WidgetBuild> {
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, WIDGET_FILE);
  await build({
    entryPoints: [join(here, 'src', 'index.ts')],
    outfile: file,
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  // The shared JPEG decoder local mode fetches (next to the script).
  const jpegWasm = createRequire(import.meta.url).resolve('@protoatlas/shared/wasm/jpeg-decode.wasm');
  await copyFile(jpegWasm, join(outDir, JPEG_WASM_FILE));
  if (opts.ort !== false) {
    // The exported wasm path lies in dist/, next to every other file we need.
    const ortDist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
    await mkdir(join(outDir, 'ort'), { recursive: true });
    await Promise.all(ORT_FILES.map((f) => copyFile(join(ortDist, f), join(outDir, 'ort', f))));
  }
  const code = await readFile(file);
  return { file, bytes: code.length, gzipBytes: gzipSync(code, { level: 9 }).length };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? join(here, '..', 'dist', 'widget');
  const r = await buildWidget(out);
  process.stdout.write(`${r.file}: ${(r.bytes / 1024).toFixed(1)} KB, ${(r.gzipBytes / 1024).toFixed(1)} KB gzip\n`);
}

import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseManifest, type Manifest } from '@protoatlas/shared';

/**
 * The bundle a benchmark runs on ($PROTOATLAS_BUNDLE, relative to where npm was
 * started) and the ONNX file the edge serves from it: int8 when exported, else fp32.
 */
export async function benchBundle(): Promise<{
  dir: string;
  manifest: Manifest;
  onnx: NonNullable<NonNullable<Manifest['files']['onnx']>['fp32']>;
}> {
  const bundleEnv = process.env.PROTOATLAS_BUNDLE;
  if (!bundleEnv) throw new Error('set PROTOATLAS_BUNDLE to a bundle directory with an ONNX export');
  const dir = resolve(process.env.INIT_CWD ?? process.cwd(), bundleEnv);
  const manifest = parseManifest(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')));
  const onnx = manifest.files.onnx?.int8 ?? manifest.files.onnx?.fp32;
  if (!onnx) throw new Error(`${dir} has no ONNX export`);
  return { dir, manifest, onnx };
}

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST_FILE, parseManifest, type Manifest } from '@protoatlas/shared';
import { loadModelRunner } from '../analysis/load-model-runner.ts';
import type { ModelRunner } from '../analysis/model-runner.ts';
import { readModelJson } from '../model/model-file.ts';
import { exists } from '../core/run-dir.ts';
import { initBackend } from '../tf/backend.ts';

/** Read and validate a bundle's manifest; errors name the file and the field. */
export async function readBundle(dir: string): Promise<{ dir: string; manifest: Manifest }> {
  const path = join(dir, MANIFEST_FILE);
  if (!(await exists(path))) {
    throw new Error(
      `${dir} is not a ProtoAtlas bundle: ${path} is missing (build one with: npm run bundle --workspace trainer -- <run dir>)`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${e instanceof Error ? e.message : String(e)}); rebuild the bundle`);
  }
  return { dir, manifest: parseManifest(raw, path) };
}

/** The bundle's trainer model, ready to run on pixels (picks and initialises the tf backend). */
export async function loadBundleRunner(
  dir: string,
  manifest: Manifest,
  opts: { quiet?: boolean } = {},
): Promise<ModelRunner> {
  const modelDir = join(dir, manifest.files.trainerModel.json, '..');
  const { config } = await readModelJson(modelDir);
  await initBackend(config.backend, { quiet: opts.quiet });
  // Backbone paths in a bundle are relative to the bundle.
  return (await loadModelRunner(modelDir, { backboneBase: dir })).runner;
}

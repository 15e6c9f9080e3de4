/** The generated reference pages (config, API, bundle) match what the code generates, and cover every field. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManifestSchema } from '@protoatlas/shared';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../../scripts/docs/api-doc.ts';
import { generatedDocs } from '../../scripts/gen-docs.ts';
import { PRESET_NAMES, resolveConfig } from '../../trainer/src/config/presets.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFile(join(ROOT, path), 'utf8');

/** Dotted paths of a config's leaves (arrays are leaves). */
function leafPaths(value: unknown, path = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [path];
  return Object.entries(value).flatMap(([k, v]) => leafPaths(v, path ? `${path}.${k}` : k));
}

describe('generated docs', () => {
  it('are up to date (run `npm run docs` after changing a schema, a preset or the API)', async () => {
    for (const { path, text } of await generatedDocs()) {
      expect(await read(path), `${path} is out of date: run npm run docs`).toBe(text);
    }
  });

  it('docs/config.md has a row for every field of every preset, and names every preset', async () => {
    const doc = await read('docs/config.md');
    for (const name of PRESET_NAMES) {
      expect(doc).toContain(`| \`${name}\` |`);
      for (const path of leafPaths(resolveConfig(name))) expect(doc).toContain(`| \`${path}\` |`);
    }
    // A field's row carries its default and bounds from the schema.
    expect(doc).toMatch(/\| `joint\.stepEpochs` \| integer \| `5` \| > 0 \|/);
    expect(doc).toMatch(/\| `backbone\.outputStride` \| 8 \\\| 16 \\\| 32 \| — \| 8, 16, 32 \|.*\(kind 'onnx'\)/);
  });

  it('docs/bundle.md mentions every top-level manifest field', async () => {
    const doc = await read('docs/bundle.md');
    for (const field of Object.keys(ManifestSchema.shape)) expect(doc).toContain(`| \`${field}\` |`);
  });

  it('docs/api.md has a section for every route and every schema of the OpenAPI document', async () => {
    const doc = await read('docs/api.md');
    const api = await openApiDocument();
    for (const [path, methods] of Object.entries(api.paths)) {
      for (const method of Object.keys(methods)) expect(doc).toContain(`## ${method.toUpperCase()} ${path}`);
    }
    for (const name of Object.keys(api.components?.schemas ?? {})) expect(doc).toContain(`### ${name}`);
  });
});

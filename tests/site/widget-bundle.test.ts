/** The widget's response types come from the edge's zod schemas by type-only import: no zod or edge code is shipped. */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const ENTRY = fileURLToPath(new URL('../../site/widget/src/index.ts', import.meta.url));
const TYPES = fileURLToPath(new URL('../../site/widget/src/types.ts', import.meta.url));

describe('widget bundle', () => {
  it('takes its response types from edge/src/schemas.ts, type-only', async () => {
    const src = await readFile(TYPES, 'utf8');
    const edgeImport = /^import type \{[^}]*\bClassifyResponse as EdgeClassifyResponse\b[^}]*\} from '([^']+)';$/m;
    expect(src.match(edgeImport)?.[1]).toBe('../../../edge/src/schemas.ts');
    expect(src).not.toMatch(/^import (?!type)/m);
  });

  it('ships no zod, hono or edge module (the type import is erased)', async () => {
    const r = await build({
      entryPoints: [ENTRY],
      bundle: true,
      format: 'iife',
      platform: 'browser',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs.some((p) => p.includes('site/widget/src/element.ts'))).toBe(true);
    expect(inputs.filter((p) => /node_modules\/(zod|@hono|hono)\/|(^|\/)edge\//.test(p))).toEqual([]);
  });
});

/**
 * `npm run docs`: writes the generated reference pages (docs/config.md from the training config schema,
 * docs/api.md from the edge's OpenAPI document, docs/bundle.md from the manifest schema).
 * `npm run docs -- --check` writes nothing and fails if a page differs from what the code generates.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_DOC, renderApiDoc } from './docs/api-doc.ts';
import { BUNDLE_DOC, renderBundleDoc } from './docs/bundle-doc.ts';
import { CONFIG_DOC, renderConfigDoc } from './docs/config-doc.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Every generated page: repository-relative path and its content. */
export async function generatedDocs(): Promise<{ path: string; text: string }[]> {
  return [
    { path: CONFIG_DOC, text: renderConfigDoc() },
    { path: API_DOC, text: await renderApiDoc() },
    { path: BUNDLE_DOC, text: renderBundleDoc() },
  ];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log('usage: npm run docs [-- --check]\n\n  --check  fail (exit 1) if a generated page is out of date');
    return;
  }
  const check = args.includes('--check');
  const stale: string[] = [];
  for (const { path, text } of await generatedDocs()) {
    const file = join(ROOT, path);
    const current = await readFile(file, 'utf8').catch(() => null);
    if (current === text) continue;
    if (check) stale.push(path);
    else {
      await writeFile(file, text);
      console.log(`wrote ${path}`);
    }
  }
  if (stale.length) {
    console.error(`out of date: ${stale.join(', ')}; run npm run docs`);
    process.exit(1);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();

/**
 * Stages a model bundle as the Worker's static assets: <out>/bundle/ holds the
 * public part (manifest.json, prototypes/, onnx/), hard-linked when the disk
 * allows (a CUB bundle is ~16,000 files), copied otherwise. The trainer's own
 * model and the backbone copy are left out.
 *
 *   node edge/scripts/stage.ts <bundle dir> <out dir>
 */
import { copyFile, link, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { parseManifest, type Manifest } from '@protoatlas/shared';
import { answerHelp } from './usage.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node edge/scripts/stage.ts <bundle dir> <out dir>

Stages a bundle's public files (manifest.json, prototypes/, onnx/) as the Worker's static assets.`,
);

/** Workers static assets refuse larger files. */
const MAX_ASSET_BYTES = 25 * 1024 * 1024;
const PUBLIC = ['manifest.json', 'prototypes', 'onnx'];

async function* files(dir: string): AsyncGenerator<string> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (e.isFile()) yield p;
  }
}

async function place(src: string, dst: string): Promise<void> {
  await mkdir(dirname(dst), { recursive: true });
  try {
    await link(src, dst);
  } catch {
    await copyFile(src, dst);
  }
}

export async function stageBundle(
  bundleDir: string,
  outDir: string,
): Promise<{ manifest: Manifest; files: number; bytes: number }> {
  const root = resolve(bundleDir);
  const manifest = parseManifest(
    JSON.parse(await readFile(join(root, 'manifest.json'), 'utf8')),
    join(root, 'manifest.json'),
  );
  const target = join(resolve(outDir), 'bundle');
  await rm(resolve(outDir), { recursive: true, force: true });
  let n = 0;
  let bytes = 0;
  for (const top of PUBLIC) {
    const src = join(root, top);
    const info = await stat(src).catch(() => null);
    if (!info) continue;
    const list = info.isDirectory()
      ? files(src)
      : (async function* () {
          yield src;
        })();
    for await (const f of list) {
      const size = (await stat(f)).size;
      if (size > MAX_ASSET_BYTES)
        throw new Error(`${f} is ${size} bytes; Workers static assets take at most ${MAX_ASSET_BYTES}`);
      await place(f, join(target, relative(root, f)));
      n++;
      bytes += size;
    }
  }
  return { manifest, files: n, bytes };
}

if (import.meta.main) {
  const [bundle, out] = process.argv.slice(2);
  if (!bundle || !out) {
    console.error('usage: node edge/scripts/stage.ts <bundle dir> <out dir>');
    process.exit(2);
  }
  const r = await stageBundle(bundle, out);
  console.log(
    `staged ${r.manifest.model.id} (${r.files} files, ${(r.bytes / 1e6).toFixed(1)} MB) into ${resolve(out)}/bundle`,
  );
}

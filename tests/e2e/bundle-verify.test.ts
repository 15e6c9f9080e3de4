/** `npm run bundle -- --verify`: a bundle checked file by file against its manifest's integrity list. */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, referencedFiles, type Manifest } from '@protoatlas/shared';
import { verifyBundle } from '../../trainer/src/bundle/integrity.ts';
import { sha256File } from '../../trainer/src/core/sha256.ts';
import { ensureTestBundle } from '../edge/helpers/test-bundle.ts';

const CLI = fileURLToPath(new URL('../../trainer/src/cli/bundle.ts', import.meta.url));
const run = promisify(execFile);

describe('bundle integrity', () => {
  let bundle: string;
  let manifest: Manifest;

  beforeAll(async () => {
    bundle = (await ensureTestBundle()).dir;
    manifest = parseManifest(JSON.parse(await readFile(join(bundle, 'manifest.json'), 'utf8')));
  }, 300_000);

  async function copy(): Promise<string> {
    const dir = join(await mkdtemp(join(tmpdir(), 'protoatlas-verify-')), 'bundle');
    await cp(bundle, dir, { recursive: true });
    return dir;
  }

  it('a built bundle lists every file it holds (models, pictures) with its real size and sha256', async () => {
    const list = manifest.files.integrity!;
    expect(list.map((f) => f.path)).toEqual([...list.map((f) => f.path)].sort());
    for (const path of [...referencedFiles(manifest), manifest.files.onnx!.int8!.path])
      expect(list.map((f) => f.path)).toContain(path);
    const crop = list.find((f) => f.path === manifest.prototypes[0].files!.crop)!;
    expect(crop.sha256).toBe(await sha256File(join(bundle, crop.path)));
    const report = await verifyBundle(bundle);
    expect(report.problems).toEqual([]);
    expect(report.verified).toBe(list.length);
  });

  it('names each damaged, missing or extra file', async () => {
    const dir = await copy();
    const crop = manifest.prototypes[1].files!.crop;
    const bytes = await readFile(join(dir, crop));
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(join(dir, crop), bytes);
    await rm(join(dir, manifest.files.onnx!.int8!.path));
    await writeFile(join(dir, 'prototypes', 'stray.webp'), 'x');
    await writeFile(join(dir, manifest.files.trainerModel.weights), 'torn');
    const listed = (path: string) => manifest.files.integrity!.find((f) => f.path === path)!;
    const weights = manifest.files.trainerModel.weights;
    const report = await verifyBundle(dir);
    expect(report.problems).toEqual([
      `${weights}: 4 bytes, the manifest says ${listed(weights).bytes}`,
      `${manifest.files.onnx!.int8!.path}: missing`,
      expect.stringMatching(new RegExp(`^${crop}: sha256 [0-9a-f]{64}, the manifest says ${listed(crop).sha256}$`)),
      "prototypes/stray.webp: not in the manifest's integrity list (left over, or added by hand)",
    ]);
  });

  it('--verify exits 0 on a whole bundle and 1, naming the file, on a damaged one', async () => {
    const ok = await run(process.execPath, [CLI, '--verify', bundle]);
    expect(ok.stdout).toMatch(/: OK, \d+ files \([\d.]+ MB\) match the manifest's sizes and sha256/);
    const dir = await copy();
    await writeFile(join(dir, manifest.prototypes[0].files!.heatmap), 'not a picture');
    const bad = await run(process.execPath, [CLI, '--verify', dir]).then(
      () => null,
      (e: { code: number; stdout: string }) => e,
    );
    expect(bad?.code).toBe(1);
    expect(bad?.stdout).toContain(`${manifest.prototypes[0].files!.heatmap}: 13 bytes, the manifest says`);
  });

  it('says how to fix a bundle built before integrity lists', async () => {
    const dir = await copy();
    const raw = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    delete raw.files.integrity;
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(raw));
    expect((await verifyBundle(dir)).problems).toEqual([
      expect.stringMatching(/has no files\.integrity list \(the bundle predates it\): rebuild it with npm run bundle/),
    ]);
  });
});

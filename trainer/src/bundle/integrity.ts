/**
 * A bundle's integrity list (manifest files.integrity): the size and sha256 of
 * every file but manifest.json, written when the bundle is built and checked by
 * `npm run bundle -- --verify <bundle>`.
 */
import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { MANIFEST_FILE, type ManifestFileRecord } from '@protoatlas/shared';
import { readBundle } from './read-bundle.ts';
import { fileRecord, mapLimit } from './files.ts';

async function bundleFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)).split(sep).join('/'))
    .filter((p) => p !== MANIFEST_FILE)
    .sort();
}

/** Every file under `root` but the manifest, with its size and sha256, sorted by path. */
export async function integrityList(root: string): Promise<ManifestFileRecord[]> {
  return mapLimit(await bundleFiles(root), 4, (rel) => fileRecord(root, rel));
}

export interface VerifyReport {
  dir: string;
  /** Files whose size and sha256 match the manifest. */
  verified: number;
  bytes: number;
  /** One line per problem, naming the file; empty when the bundle is whole. */
  problems: string[];
}

/** Check every listed file's size and sha256, and that no file is missing from or extra to the list. */
export async function verifyBundle(dir: string): Promise<VerifyReport> {
  const { manifest } = await readBundle(dir);
  const list = manifest.files.integrity;
  if (!list) {
    const fix = 'rebuild it with npm run bundle --workspace trainer -- <run dir>';
    const problem = `${dir}/${MANIFEST_FILE} has no files.integrity list (the bundle predates it): ${fix}`;
    return { dir, verified: 0, bytes: 0, problems: [problem] };
  }
  const problems: string[] = [];
  let verified = 0;
  let bytes = 0;
  const onDisk = new Set(await bundleFiles(dir));
  await mapLimit(list, 4, async (want) => {
    if (!onDisk.has(want.path)) return void problems.push(`${want.path}: missing`);
    const got = await fileRecord(dir, want.path);
    if (got.bytes !== want.bytes) problems.push(`${want.path}: ${got.bytes} bytes, the manifest says ${want.bytes}`);
    else if (got.sha256 !== want.sha256) {
      problems.push(`${want.path}: sha256 ${got.sha256}, the manifest says ${want.sha256}`);
    } else {
      verified++;
      bytes += got.bytes;
    }
  });
  const listed = new Set(list.map((f) => f.path));
  for (const path of onDisk) {
    if (!listed.has(path)) problems.push(`${path}: not in the manifest's integrity list (left over, or added by hand)`);
  }
  problems.sort();
  return { dir, verified, bytes, problems };
}

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import {
  atlasPath,
  lookAlikes,
  MANIFEST_FILE,
  parseManifest,
  speciesGroup,
  speciesSlug,
  votesFor,
  type LookAlike,
  type Manifest,
  type ManifestPatchRef,
  type ManifestPrototype,
  type Vote,
} from '@protoatlas/shared';
import { imageSize } from './image-size.ts';

/** Where the built site serves the bundle's pictures and models (relative to the base). */
export const BUNDLE_URL_DIR = 'bundle/';

export interface Picture {
  /** Path relative to the site base. */
  src: string;
  width: number;
  height: number;
}

export interface Species {
  id: number;
  key: string;
  name: string;
  slug: string;
  path: string;
  group: string;
  prototypes: number[];
  live: number;
  pruned: number;
  /** The first live prototype's source photo (a whole bird reads better than a part), for cards. */
  cover: Picture | null;
}

export interface Neighbour extends ManifestPatchRef {
  picture: Picture | null;
}

export interface PrototypeView {
  p: ManifestPrototype;
  path: string;
  crop: Picture | null;
  source: Picture | null;
  heatmap: Picture | null;
  nearest: Neighbour[];
}

export interface Atlas {
  dir: string;
  manifest: Manifest;
  species: Species[];
  prototypes: PrototypeView[];
  groups: { name: string; count: number }[];
  votesFor(classId: number): Vote[];
  lookAlikes(classId: number): LookAlike[];
}

/**
 * The bundle directory from PROTOATLAS_BUNDLE. A relative path is taken from
 * where npm was started (INIT_CWD), since `npm run build --workspace site`
 * runs inside site/ while the user typed the path from the repo root.
 */
export function bundleDir(env: NodeJS.ProcessEnv = process.env): string {
  const raw = env.PROTOATLAS_BUNDLE;
  if (!raw)
    throw new Error(
      'PROTOATLAS_BUNDLE is not set: point it at a model bundle, e.g. PROTOATLAS_BUNDLE=runs/demo/bundle npm run build --workspace site',
    );
  const dir = isAbsolute(raw) ? raw : resolve(env.INIT_CWD ?? process.cwd(), raw);
  if (!existsSync(join(dir, MANIFEST_FILE))) throw new Error(`PROTOATLAS_BUNDLE=${raw}: no ${MANIFEST_FILE} in ${dir}`);
  return dir;
}

/** Run async jobs with bounded concurrency (thousands of header reads must not exhaust file handles). */
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export async function loadAtlas(dir: string): Promise<Atlas> {
  const manifest = parseManifest(
    JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')),
    join(dir, MANIFEST_FILE),
  );
  const files = new Set<string>();
  for (const p of manifest.prototypes) {
    if (p.files) for (const f of [p.files.crop, p.files.source, p.files.heatmap]) files.add(f);
    for (const n of p.nearest.train) if (n.file) files.add(n.file);
  }
  const list = [...files];
  const sizes = await mapLimit(list, 64, async (f) => {
    try {
      return await imageSize(join(dir, f));
    } catch {
      return null; // a missing picture is shown as missing, not a failed build
    }
  });
  const pictures = new Map<string, Picture>();
  list.forEach((f, i) => {
    const s = sizes[i];
    if (s) pictures.set(f, { src: BUNDLE_URL_DIR + f, width: s.width, height: s.height });
  });
  const pic = (f: string | null | undefined) => (f ? (pictures.get(f) ?? null) : null);

  const prototypes: PrototypeView[] = manifest.prototypes.map((p) => ({
    p,
    path: atlasPath.prototype(p.id),
    crop: pic(p.files?.crop),
    source: pic(p.files?.source),
    heatmap: pic(p.files?.heatmap),
    nearest: p.nearest.train.map((n) => ({ ...n, picture: pic(n.file) })),
  }));
  const slugs = new Set<string>();
  const species: Species[] = manifest.classes.map((c) => {
    let slug = speciesSlug(c.key);
    if (slugs.has(slug)) slug = `${slug}-${c.id}`; // keys are unique, slugs of odd keys might not be
    slugs.add(slug);
    const own = prototypes.filter((v) => v.p.classId === c.id);
    const live = own.filter((v) => !v.p.pruned);
    return {
      id: c.id,
      key: c.key,
      name: c.name,
      slug,
      path: `species/${slug}/`,
      group: speciesGroup(c.name),
      prototypes: own.map((v) => v.p.id),
      live: live.length,
      pruned: own.length - live.length,
      cover: (live[0] ?? own[0])?.source ?? (live[0] ?? own[0])?.crop ?? null,
    };
  });
  const counts = new Map<string, number>();
  for (const s of species) counts.set(s.group, (counts.get(s.group) ?? 0) + 1);
  const groups = [...counts].map(([name, count]) => ({ name, count })).sort((a, b) => a.name.localeCompare(b.name));
  const votes = new Map<number, Vote[]>();
  const alikes = new Map<number, LookAlike[]>();
  return {
    dir,
    manifest,
    species,
    prototypes,
    groups,
    votesFor: (c) => memo(votes, c, () => votesFor(manifest, c)),
    lookAlikes: (c) => memo(alikes, c, () => lookAlikes(manifest, c)),
  };
}

let cached: Promise<Atlas> | null = null;

/** The atlas of PROTOATLAS_BUNDLE, loaded once per build however many pages ask. */
export function atlas(): Promise<Atlas> {
  cached ??= loadAtlas(bundleDir());
  return cached;
}

/** The cached value for key, computed once. */
function memo<K, V>(cache: Map<K, V>, key: K, compute: () => V): V {
  let v = cache.get(key);
  if (v === undefined) {
    v = compute();
    cache.set(key, v);
  }
  return v;
}

/**
 * Each prototype's nearest training patches, cached on disk beside the similarities. The prune
 * phase (k = 6) and the bundle (k = 5) make the same search over the training images with each
 * prototype's source image left out; whichever runs second reads the first one's result (a stored
 * list of k hits answers any k' <= k).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.ts';
import type { ExcludedPatch, PatchHit } from './nearest-patches.ts';
import { type FeatureIdentity, similarityKey } from './similarity-cache.ts';

const MAGIC = 'protoatlas-nearest-v1';

/** Key of a search: the embedding and the features it runs on (as for similarities), and the left-out patches. */
export function nearestKey(embedding: string, id: FeatureIdentity, exclude: (ExcludedPatch | null)[]): string {
  return createHash('sha256')
    .update(MAGIC)
    .update(similarityKey(embedding, id))
    .update(JSON.stringify(exclude))
    .digest('hex')
    .slice(0, 32);
}

/** Serialise: a JSON header (hits per prototype), then per hit item, patch, distance and its map. */
export function encodeNearest(hits: PatchHit[][], k: number): Buffer {
  const counts = hits.map((h) => h.length);
  // Every map covers the same grid.
  const hw = hits.find((list) => list.length)?.[0].map.length ?? 0;
  const header = Buffer.from(JSON.stringify({ magic: MAGIC, k, hw, counts }), 'utf8');
  const total = counts.reduce((a, b) => a + b, 0);
  const ints = new Int32Array(total * 2);
  const floats = new Float32Array(total * (1 + hw));
  let h = 0;
  for (const list of hits) {
    for (const hit of list) {
      ints[2 * h] = hit.item;
      ints[2 * h + 1] = hit.patch;
      floats[h * (1 + hw)] = hit.distance;
      floats.set(hit.map, h * (1 + hw) + 1);
      h++;
    }
  }
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length, 0);
  return Buffer.concat([len, header, Buffer.from(ints.buffer), Buffer.from(floats.buffer)]);
}

/** The stored search, or null when the bytes are not one (wrong magic, truncated). */
export function decodeNearest(buf: Buffer): { k: number; hits: PatchHit[][] } | null {
  if (buf.length < 4) return null;
  const headerLength = buf.readUInt32LE(0);
  let header: { magic: string; k: number; hw: number; counts: number[] };
  try {
    header = JSON.parse(buf.subarray(4, 4 + headerLength).toString('utf8'));
  } catch {
    return null;
  }
  if (header.magic !== MAGIC) return null;
  const { hw, counts } = header;
  const total = counts.reduce((a, b) => a + b, 0);
  if (buf.length !== 4 + headerLength + total * 8 + total * (1 + hw) * 4) return null;
  const body = new Uint8Array(buf.subarray(4 + headerLength)); // aligned copy
  const ints = new Int32Array(body.buffer, 0, total * 2);
  const floats = new Float32Array(body.buffer, total * 8, total * (1 + hw));
  let h = 0;
  const hits = counts.map((n) =>
    Array.from({ length: n }, () => {
      const o = h * (1 + hw);
      const hit = {
        item: ints[2 * h],
        patch: ints[2 * h + 1],
        distance: floats[o],
        map: floats.slice(o + 1, o + 1 + hw),
      };
      h++;
      return hit;
    }),
  );
  return { k: header.k, hits };
}

/**
 * The k nearest hits of every prototype: from the cache when a search of at least k is stored, else
 * computed and stored. The key pins the head and the features, so the grid needs no check of its own.
 */
export async function cachedNearestPatches(args: {
  dir: string;
  key: string;
  k: number;
  compute: (k: number) => PatchHit[][] | Promise<PatchHit[][]>;
}): Promise<{ hits: PatchHit[][]; cached: boolean }> {
  const file = join(args.dir, `nearest-${args.key}.bin`);
  const stored = await readFile(file).then(decodeNearest, () => null);
  if (stored && stored.k >= args.k) return { hits: stored.hits.map((list) => list.slice(0, args.k)), cached: true };
  const hits = await args.compute(args.k);
  await mkdir(args.dir, { recursive: true });
  await writeFileAtomic(file, encodeNearest(hits, args.k));
  return { hits, cached: false };
}

/**
 * Key of the search over a run's training originals (what prune and the bundle both run), under the
 * embedding of `embeddingDigest`.
 */
export function trainNearestKey(
  embedding: string,
  config: { backbone: unknown },
  data: { itemsBySplit: { train: { id: string }[] } },
  exclude: (ExcludedPatch | null)[],
): string {
  const id: FeatureIdentity = {
    backbone: config.backbone,
    items: data.itemsBySplit.train.map((i) => i.id),
    flip: false,
  };
  return nearestKey(embedding, id, exclude);
}

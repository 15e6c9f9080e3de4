/**
 * Similarity vectors of a split, cached on disk under a key of everything they
 * depend on (add-on and prototype weights, the backbone, the items, flips).
 * Stage 3 writes them; an edit that leaves the embedding alone (drop, relabel)
 * refits the last layer on them without another pass over the data.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostTensors } from '../core/host-tensors.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import { writeFileAtomic } from '../core/atomic.ts';
import { resolveRepoPath } from '../core/data-path.ts';
import type { Similarities } from './refit-last-layer.ts';

const MAGIC = 'protoatlas-similarities-v1';

/** What the features of a split depend on besides the weights (embeddingDigest). */
export interface FeatureIdentity {
  /** The backbone config (kind, file, tap, preprocessing...). */
  backbone: unknown;
  /** Item ids of the split, in order. */
  items: string[];
  /** Mirrored copies included. */
  flip: boolean;
}

/**
 * Digest of what a patch embedding and its similarities depend on: the add-on's activations, the
 * similarity's epsilon and top-k, the head's weights but its last layer's, and a trainable backbone's (null for
 * frozen ones). Computed once per head, it keys every split's cache.
 */
export function embeddingDigest(head: ProtoHead, backboneWeights: HostTensors | null): string {
  const h = createHash('sha256');
  const what = { addOn: head.spec.addOn.map((l) => [l.channels, l.activation]), epsilon: head.epsilon };
  // k = 1 keys as before, so caches of runs without top-k stay valid.
  h.update(JSON.stringify(head.topK === 1 ? what : { ...what, topK: head.topK }));
  const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  for (const [name, v] of head.namedVariables())
    if (name !== 'head.last_layer') h.update(name).update(bytes(v.dataSync() as Float32Array));
  for (const [name, t] of [...(backboneWeights ?? new Map())].sort((a, b) => (a[0] < b[0] ? -1 : 1)))
    h.update(name).update(bytes(t.data));
  return h.digest('hex');
}

/** Key of a split's similarities under the embedding of `embeddingDigest`. */
export function similarityKey(embedding: string, id: FeatureIdentity): string {
  return createHash('sha256')
    .update(MAGIC)
    .update(JSON.stringify(id.backbone))
    .update(String(id.flip))
    .update(id.items.join('\n'))
    .update(embedding)
    .digest('hex')
    .slice(0, 32);
}

export async function loadSimilarities(dir: string, key: string): Promise<Similarities | null> {
  let buf: Buffer;
  try {
    buf = await readFile(join(dir, `${key}.bin`));
  } catch {
    return null;
  }
  const headerLength = buf.readUInt32LE(0);
  const header = JSON.parse(buf.subarray(4, 4 + headerLength).toString('utf8')) as {
    magic: string;
    n: number;
    m: number;
  };
  if (header.magic !== MAGIC || buf.length !== 4 + headerLength + header.n * header.m * 4 + header.n * 4) return null;
  const body = buf.subarray(4 + headerLength);
  const copy = new Uint8Array(body); // aligned copy
  return {
    n: header.n,
    sims: new Float32Array(copy.buffer, 0, header.n * header.m),
    labels: new Int32Array(copy.buffer, header.n * header.m * 4, header.n),
  };
}

export async function saveSimilarities(dir: string, key: string, s: Similarities, m: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const header = Buffer.from(JSON.stringify({ magic: MAGIC, n: s.n, m }), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length, 0);
  const sims = Buffer.from(s.sims.buffer, s.sims.byteOffset, s.sims.byteLength);
  const labels = Buffer.from(s.labels.buffer, s.labels.byteOffset, s.labels.byteLength);
  await writeFileAtomic(join(dir, `${key}.bin`), Buffer.concat([len, header, sims, labels]));
}

/** Cached similarities, or compute and store them. */
export async function cachedSimilarities(
  dir: string,
  key: string,
  m: number,
  compute: () => Promise<Similarities>,
): Promise<{ sims: Similarities; cached: boolean }> {
  const hit = await loadSimilarities(dir, key);
  if (hit) return { sims: hit, cached: true };
  const sims = await compute();
  await saveSimilarities(dir, key, sims, m);
  return { sims, cached: false };
}

/** Where a run's similarities are cached: beside its feature cache. */
export function similarityCacheDir(config: { featureCacheDir: string }): string {
  return join(resolveRepoPath(config.featureCacheDir), 'similarities');
}

/**
 * The keys of a run's train (with the config's flips) and validation similarities, and the digest of
 * the head's embedding they share (for the nearest-patch search's key).
 */
export function runSimilarityKeys(
  head: ProtoHead,
  config: { backbone: unknown; data: { flip: boolean } },
  data: {
    itemsBySplit: { train: { id: string }[]; val: { id: string }[] };
    sources: { train?: { canFlip: boolean } };
    trainableBackbone: { getWeights(): HostTensors } | null;
  },
  backboneWeights: HostTensors | null = data.trainableBackbone?.getWeights() ?? null,
): { embedding: string; train: string; val: string } {
  const embedding = embeddingDigest(head, backboneWeights);
  const id = (items: { id: string }[], flip: boolean): FeatureIdentity => ({
    backbone: config.backbone,
    items: items.map((i) => i.id),
    flip,
  });
  return {
    embedding,
    train: similarityKey(
      embedding,
      id(data.itemsBySplit.train, config.data.flip && (data.sources.train?.canFlip ?? false)),
    ),
    val: similarityKey(embedding, id(data.itemsBySplit.val, false)),
  };
}

export async function storeRunSimilarities(
  head: ProtoHead,
  config: { backbone: unknown; data: { flip: boolean }; featureCacheDir: string },
  data: Parameters<typeof runSimilarityKeys>[2],
  sims: { train: Similarities; val: Similarities },
): Promise<void> {
  const keys = runSimilarityKeys(head, config, data);
  const dir = similarityCacheDir(config);
  await saveSimilarities(dir, keys.train, sims.train, head.numPrototypes);
  await saveSimilarities(dir, keys.val, sims.val, head.numPrototypes);
}

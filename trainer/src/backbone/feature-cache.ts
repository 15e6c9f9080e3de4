/**
 * Feature extraction with an on-disk cache. A frozen backbone's feature maps
 * for a dataset are computed once, stored compactly (see feature-store.ts) and
 * reloaded in seconds on the next run. Extraction is resumable: every chunk of
 * images is written to its own file as soon as it is done, and a re-run after
 * a crash or Ctrl-C picks up from the completed chunks.
 *
 * Several views (original, mirrored, augmented copies) share one decode of
 * each image, which is about a third of the work. Backbones with a recipe (ONNX) run on a pool of
 * worker threads, one single-threaded copy per core (feature-pool.ts); others
 * run on the main thread with decoding running ahead of inference.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { decodeMany } from '../data/decode.ts';
import type { DatasetItem, RgbImage, SkippedFile } from '../data/types.ts';
import { Progress } from '../core/progress.ts';
import { inferBatch, type BatchResult } from './feature-batch.ts';
import {
  asBytes,
  dataBytes,
  readFeatureData,
  readFeatureHeader,
  writeFeatureFile,
  type FeatureFileHeader,
} from './feature-file.ts';
import { featureCacheKeys } from './feature-key.ts';
import { describeView, type FeatureView } from './feature-view.ts';
import { runInWorkers } from './feature-pool.ts';
import {
  allocateFeatureData,
  bytesPerElement,
  createFeatureStore,
  type FeatureEncoding,
  type FeatureStore,
} from './feature-store.ts';
import type { FrozenBackbone } from './types.ts';

export interface ExtractOptions {
  flip: boolean;
  cacheDir: string;
  /** Images per inference call. Default 8 (fastest for int8 MobileNetV2 on 2 cores, see trainer/bench/features.ts). */
  batchSize?: number;
  /** Images per resumable chunk file. Default 512. */
  chunkSize?: number;
  progressLabel?: string;
  quiet?: boolean;
  /**
   * Storage of non-quantised features. Default 'float16' (half the memory of float32); 'uint8' rounds them to
   * the backbone's `storageGrid` (half the memory of float16).
   */
  floatEncoding?: 'float16' | 'float32' | 'uint8';
  /** Concurrent decodes per batch. Default 8 on the main thread, 4 per worker. */
  decodeConcurrency?: number;
  /** Main-thread path: batches decoded ahead of inference. Default 2. */
  lookahead?: number;
  /**
   * Worker threads, each with a single-threaded copy of the backbone, for
   * backbones that have a `recipe` (ONNX). Default: available cores. 0 = main thread only.
   */
  workers?: number;
}

export interface ExtractResult {
  store: FeatureStore;
  skipped: SkippedFile[];
  /** valid[i] is false when item i could not be decoded (its feature map is zeros). */
  valid: boolean[];
  /** True when the whole store came from the cache. */
  cacheHit: boolean;
  /** Images restored from chunk files of an interrupted earlier run. */
  resumed: number;
  key: string;
  path: string;
  /** Where extraction time went (zeros on a cache hit): waiting for decodes vs preprocessing + inference. */
  timing: ExtractTiming;
}

export interface ExtractTiming {
  totalMs: number;
  decodeWaitMs: number;
  inferenceMs: number;
}

export async function extractFeatures(
  backbone: FrozenBackbone,
  items: readonly DatasetItem[],
  opts: ExtractOptions,
): Promise<ExtractResult> {
  const { flip, ...rest } = opts;
  const [result] = await extractFeatureSets(backbone, items, { ...rest, views: [{ flip }] });
  return result;
}

/** One store per entry of `views`, decoding every image only once. */
export async function extractFeatureSets(
  backbone: FrozenBackbone,
  items: readonly DatasetItem[],
  opts: Omit<ExtractOptions, 'flip'> & { views: FeatureView[] },
): Promise<ExtractResult[]> {
  const chunkSize = opts.chunkSize ?? 512;
  const batchSize = opts.batchSize ?? 8;
  const quantized = backbone.quantization !== undefined && backbone.extractQuantized !== undefined;
  const encoding: FeatureEncoding = quantized ? 'uint8' : (opts.floatEncoding ?? 'float16');
  if (encoding === 'uint8' && !quantized && !backbone.storageGrid)
    throw new Error(
      `feature cache: uint8 storage needs an 8-bit grid for the features, and ${backbone.description} has none ` +
        '(an int8 ONNX model has one); store them as float16 instead (featureCacheEncoding)',
    );
  const quantization = backbone.quantization ?? (encoding === 'uint8' ? backbone.storageGrid : undefined);
  const shape = backbone.featureShape;
  const mapSize = shape[0] * shape[1] * shape[2];
  const n = items.length;
  const chunks = Math.ceil(n / chunkSize);
  await mkdir(opts.cacheDir, { recursive: true });

  const targets: Target[] = [];
  const keys = await featureCacheKeys(
    { backboneHash: backbone.hash, preprocess: backbone.preprocess, encoding, items },
    opts.views,
  );
  for (const [v, view] of opts.views.entries()) {
    const key = keys[v];
    const path = join(opts.cacheDir, `${key}.feat`);
    await removeStaleTemps(opts.cacheDir, key);
    const loaded = await loadWhole(path, key, n, shape, encoding);
    const t: Target = loaded
      ? {
          view,
          key,
          path,
          partsDir: '',
          ...loaded,
          chunkDone: new Array(chunks).fill(true),
          cacheHit: true,
          resumed: 0,
        }
      : {
          view,
          key,
          path,
          partsDir: join(opts.cacheDir, `${key}.parts`),
          store: createFeatureStore({ n, shape, encoding, quantization }),
          invalid: new Set(),
          skipped: new Map(),
          chunkDone: new Array(chunks).fill(false),
          cacheHit: false,
          resumed: 0,
        };
    if (!t.cacheHit) await restoreChunks(t, chunkSize, n);
    targets.push(t);
  }

  const pending = targets.filter((t) => !t.cacheHit);
  const timing: ExtractTiming = { totalMs: 0, decodeWaitMs: 0, inferenceMs: 0 };
  for (const t of targets)
    if (t.cacheHit) await rm(join(opts.cacheDir, `${t.key}.parts`), { recursive: true, force: true });
  if (pending.length > 0) {
    const t0 = performance.now();
    await runExtraction(backbone, items, pending, { ...opts, batchSize, chunkSize, encoding, mapSize }, timing);
    timing.totalMs = performance.now() - t0;
    for (const t of pending) {
      await writeFeatureFile(t.path, headerFor(t, 0, n, backbone.description), asBytes(t.store.data));
      await rm(t.partsDir, { recursive: true, force: true });
    }
  }
  return targets.map((t) => ({
    store: t.store,
    skipped: [...t.skipped.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s),
    valid: Array.from({ length: n }, (_, i) => !t.invalid.has(i)),
    cacheHit: t.cacheHit,
    resumed: t.resumed,
    key: t.key,
    path: t.path,
    timing,
  }));
}

interface Target {
  view: FeatureView;
  key: string;
  path: string;
  partsDir: string;
  store: FeatureStore;
  invalid: Set<number>;
  skipped: Map<number, SkippedFile>;
  chunkDone: boolean[];
  cacheHit: boolean;
  resumed: number;
}

interface Batch {
  chunk: number;
  start: number;
  end: number;
  targets: Target[];
}

interface RunOptions {
  batchSize: number;
  chunkSize: number;
  encoding: FeatureEncoding;
  mapSize: number;
  progressLabel?: string;
  quiet?: boolean;
  decodeConcurrency?: number;
  lookahead?: number;
  workers?: number;
}

async function runExtraction(
  backbone: FrozenBackbone,
  items: readonly DatasetItem[],
  targets: Target[],
  o: RunOptions,
  timing: ExtractTiming,
): Promise<void> {
  const n = items.length;
  const batches: Batch[] = [];
  const batchesLeft = new Map<number, number>();
  for (let c = 0; c * o.chunkSize < n; c++) {
    const need = targets.filter((t) => !t.chunkDone[c]);
    if (need.length === 0) continue;
    const end = Math.min(n, (c + 1) * o.chunkSize);
    for (let s = c * o.chunkSize; s < end; s += o.batchSize) {
      batches.push({ chunk: c, start: s, end: Math.min(end, s + o.batchSize), targets: need });
      batchesLeft.set(c, (batchesLeft.get(c) ?? 0) + 1);
    }
  }
  const todo = batches.reduce((a, b) => a + b.end - b.start, 0);
  if (todo === 0) return;
  for (const t of targets) await mkdir(t.partsDir, { recursive: true });
  const resumed = Math.max(...targets.map((t) => t.resumed));
  const views = targets.map((t) => describeView(t.view)).join('+');
  const progress = new Progress({
    label: `${o.progressLabel ?? 'features'} (${views})`,
    total: todo,
    unit: 'img',
    quiet: o.quiet,
  });
  if (resumed > 0 && !o.quiet) process.stderr.write(`resuming feature extraction: ${resumed} images already done\n`);

  /** Stores one batch's results; writes a chunk file when its last batch is in. */
  const accept = async (index: number, r: BatchResult): Promise<void> => {
    const b = batches[index];
    const bad = new Set(r.invalid);
    r.invalid.forEach((k, j) => {
      for (const t of b.targets) {
        t.invalid.add(b.start + k);
        t.skipped.set(b.start + k, r.skipped[j]);
      }
    });
    const validIdx: number[] = [];
    for (let i = b.start; i < b.end; i++) if (!bad.has(i - b.start)) validIdx.push(i);
    b.targets.forEach((t, ti) => {
      const out = r.outputs[ti];
      validIdx.forEach((idx, j) => {
        const map = out.subarray(j * o.mapSize, (j + 1) * o.mapSize);
        if (map instanceof Uint8Array) t.store.setQuantized(idx, map);
        else t.store.set(idx, map);
      });
    });
    progress.tick(b.end - b.start, skippedNote(targets));
    const left = batchesLeft.get(b.chunk)! - 1;
    batchesLeft.set(b.chunk, left);
    if (left === 0) {
      const start = b.chunk * o.chunkSize;
      const count = Math.min(n, start + o.chunkSize) - start;
      for (const t of b.targets) await writeChunk(t, b.chunk, start, count, o.encoding, backbone.description);
    }
  };

  // Raw 8-bit output only from natively quantised backbones; float features stored as uint8 are rounded on set.
  const quantized = backbone.quantization !== undefined && backbone.extractQuantized !== undefined;
  const workers = o.workers ?? availableParallelism();
  if (backbone.recipe && workers > 0) {
    const stats = await runInWorkers(
      batches.map((b) => ({ items: items.slice(b.start, b.end), views: b.targets.map((t) => t.view) })),
      { recipe: backbone.recipe, hash: backbone.hash, workers, quantized, decodeConcurrency: o.decodeConcurrency ?? 4 },
      accept,
    );
    timing.decodeWaitMs += stats.decodeWaitMs;
    timing.inferenceMs += stats.inferenceMs;
  } else {
    await runInThread(backbone, items, batches, o, quantized, timing, accept);
  }
  progress.finish(skippedNote(targets));
}

type Decoded = { images: (RgbImage | null)[]; skipped: SkippedFile[] };

/**
 * Main-thread path. Decoding runs `lookahead` batches ahead: onnxruntime blocks
 * the JS thread during a run, but queued sharp decodes keep going on libuv's threads.
 */
async function runInThread(
  backbone: FrozenBackbone,
  items: readonly DatasetItem[],
  batches: Batch[],
  o: RunOptions,
  quantized: boolean,
  timing: ExtractTiming,
  accept: (index: number, r: BatchResult) => Promise<void>,
): Promise<void> {
  const lookahead = Math.max(1, o.lookahead ?? 2);
  const queue: Promise<Decoded>[] = [];
  let started = 0;
  const fill = (): void => {
    while (queue.length <= lookahead && started < batches.length) {
      const b = batches[started++];
      const p = decodeMany(items.slice(b.start, b.end), backbone.preprocess.size, {
        concurrency: o.decodeConcurrency ?? 8,
      });
      p.catch(() => undefined); // awaited below; this only avoids an unhandled-rejection crash meanwhile
      queue.push(p);
    }
  };
  fill();
  for (let i = 0; i < batches.length; i++) {
    const b = batches[i];
    const tWait = performance.now();
    const decoded = await queue.shift()!;
    timing.decodeWaitMs += performance.now() - tWait;
    fill();
    const tInfer = performance.now();
    const r = await inferBatch(
      backbone,
      decoded,
      items.slice(b.start, b.end),
      b.targets.map((t) => t.view),
      quantized,
    );
    timing.inferenceMs += performance.now() - tInfer;
    await accept(i, r);
  }
}

function skippedNote(targets: Target[]): string {
  const k = targets[0]?.invalid.size ?? 0;
  return k > 0 ? `${k} skipped` : '';
}

function headerFor(t: Target, start: number, count: number, backbone: string): FeatureFileHeader {
  const inRange = (i: number): boolean => i >= start && i < start + count;
  const invalid = [...t.invalid].filter(inRange).sort((a, b) => a - b);
  return {
    key: t.key,
    start,
    count,
    total: t.store.n,
    shape: t.store.shape,
    encoding: t.store.encoding,
    quantization: t.store.quantization,
    invalid,
    skipped: invalid.flatMap((i) => {
      const s = t.skipped.get(i);
      return s ? [{ index: i, path: s.path, reason: s.reason }] : [];
    }),
    backbone,
    createdAt: new Date().toISOString(),
  };
}

function chunkPath(t: Target, chunk: number): string {
  return join(t.partsDir, `chunk-${String(chunk).padStart(5, '0')}.feat`);
}

async function writeChunk(
  t: Target,
  chunk: number,
  start: number,
  count: number,
  encoding: FeatureEncoding,
  backbone: string,
): Promise<void> {
  const bpe = bytesPerElement(encoding);
  const size = t.store.shape[0] * t.store.shape[1] * t.store.shape[2];
  const bytes = asBytes(t.store.data).subarray(start * size * bpe, (start + count) * size * bpe);
  await writeFeatureFile(chunkPath(t, chunk), headerFor(t, start, count, backbone), bytes);
  t.chunkDone[chunk] = true;
}

/** Loads chunk files left by an interrupted run into the target's store. */
async function restoreChunks(t: Target, chunkSize: number, n: number): Promise<void> {
  let names: string[];
  try {
    names = await readdir(t.partsDir);
  } catch {
    return;
  }
  await removeStaleTemps(t.partsDir, 'chunk-');
  const size = t.store.shape[0] * t.store.shape[1] * t.store.shape[2];
  const bpe = bytesPerElement(t.store.encoding);
  for (let c = 0; c * chunkSize < n; c++) {
    const p = chunkPath(t, c);
    if (!names.includes(p.slice(t.partsDir.length + 1))) continue;
    const start = c * chunkSize;
    const count = Math.min(n, start + chunkSize) - start;
    const found = await readFeatureHeader(p);
    if (
      !found ||
      !sameLayout(found.header, t.key, n, t.store) ||
      found.header.start !== start ||
      found.header.count !== count
    )
      continue;
    await readFeatureData(
      p,
      found.dataOffset,
      asBytes(t.store.data).subarray(start * size * bpe, (start + count) * size * bpe),
    );
    for (const i of found.header.invalid) t.invalid.add(i);
    for (const s of found.header.skipped) t.skipped.set(s.index, { path: s.path, reason: s.reason });
    t.chunkDone[c] = true;
    t.resumed += count;
  }
}

function sameLayout(
  h: FeatureFileHeader,
  key: string,
  n: number,
  like: Pick<FeatureStore, 'shape' | 'encoding'>,
): boolean {
  return h.key === key && h.total === n && h.encoding === like.encoding && h.shape.join('x') === like.shape.join('x');
}

async function loadWhole(
  path: string,
  key: string,
  n: number,
  shape: FeatureStore['shape'],
  encoding: FeatureEncoding,
): Promise<Pick<Target, 'store' | 'invalid' | 'skipped'> | undefined> {
  const found = await readFeatureHeader(path);
  if (!found) return undefined;
  const h = found.header;
  if (!sameLayout(h, key, n, { shape, encoding }) || h.start !== 0 || h.count !== n) return undefined;
  const total = n * shape[0] * shape[1] * shape[2];
  const data = allocateFeatureData(encoding, total);
  if (asBytes(data).byteLength !== dataBytes(h)) return undefined;
  await readFeatureData(path, found.dataOffset, asBytes(data));
  const store = createFeatureStore({ n, shape, encoding, quantization: h.quantization }, data);
  const skipped = new Map<number, SkippedFile>(h.skipped.map((s) => [s.index, { path: s.path, reason: s.reason }]));
  return { store, invalid: new Set(h.invalid), skipped };
}

/** Deletes temp files (`<prefix>*.tmp-<pid>-*`) left by processes that are no longer running. */
async function removeStaleTemps(dir: string, prefix: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = name.startsWith(prefix) ? /\.tmp-(\d+)-[0-9a-f]+$/.exec(name) : null;
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    await rm(join(dir, name), { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Data-parallel gradient threads for the joint stage on single-threaded
 * backends (tfjs wasm in Node): each worker holds a copy of the backbone and
 * head, and computes some of every batch's micro-batches while the main thread
 * computes the rest. The main thread sums the gradients in micro-batch order
 * (so the update is bit-identical to one thread's), applies Adam, and sends the
 * new values of the trained variables back before the next step.
 *
 * The same workers compute eval-mode feature maps (feature-snapshot.ts) and, for cached
 * features, the head's similarities (predict.ts) on request.
 *
 * Batch-norm moving statistics (a training-mode side effect) follow the main
 * thread's micro-batches only, as PyTorch's DistributedDataParallel keeps rank
 * 0's; gradients do not depend on them.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import type { TrainableBackbone } from '../backbone/types.ts';
import type { SplitName } from '../data/types.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import type { TrainedHead } from '../head/trained-head.ts';
import type { LossWeights } from '../head/losses.ts';
import type { HostTensors } from '../core/host-tensors.ts';
import { exitOrTerminate } from '../core/worker-exit.ts';
import type { PhaseConfig } from '../config/config.ts';
import type { BackendPreference } from '../tf/backend.ts';
import type { GradContext, MicroBatch, MicroResult } from './grad-step.ts';
import type { FeatureSource } from './sources.ts';
import type { GradWorkerInit, GradWorkerReply, GradWorkerRequest } from './grad-protocol.ts';
import type { ExcludedPatch, PatchHit, PushBest } from './search-results.ts';

/** How many gradient threads a run uses, and why (printed at start). */
export function resolveTrainThreads(
  setting: 'auto' | number,
  backend: string,
  backbone: TrainableBackbone | null,
  source: FeatureSource,
): { threads: number; why: string } {
  if (!backbone) {
    if (!source.sharedFeatures) return { threads: 1, why: 'the cached features are not in shared memory' };
  } else {
    if (!backbone.workerRecipe) return { threads: 1, why: 'this backbone cannot be rebuilt in a worker thread' };
    if (!source.shared && !source.sharedFeatures?.throughBackbone)
      return { threads: 1, why: 'the training images are not in shared memory' };
  }
  if (setting !== 'auto') return { threads: setting, why: 'trainThreads in the config' };
  if (backend !== 'wasm' && backend !== 'cpu')
    return { threads: 1, why: `the ${backend} backend uses every core itself` };
  const cores = availableParallelism();
  return { threads: cores, why: `${backend} runs one thread; one gradient thread per core (${cores})` };
}

/**
 * Starts the pool a run's settings call for, over every source whose images are
 * in shared memory; `pool` is null when this thread works alone, and `why` says
 * how the thread count was chosen.
 */
export async function startGradPoolFor(
  data: { trainableBackbone: TrainableBackbone | null; sources: Partial<Record<SplitName, FeatureSource>> },
  opts: { threads: 'auto' | number; backend: string; head: TrainedHead },
): Promise<{ pool: GradPool | null; threads: number; why: string }> {
  const backbone = data.trainableBackbone;
  const train = data.sources.train;
  if (!train) return { pool: null, threads: 1, why: 'no training source' };
  const { threads, why } = resolveTrainThreads(opts.threads, opts.backend, backbone, train);
  if (threads < 2) return { pool: null, threads, why };
  const inShared = (src: FeatureSource | undefined) =>
    backbone ? !!src?.shared || !!src?.sharedFeatures?.throughBackbone : !!src?.sharedFeatures;
  const shared = Object.fromEntries(Object.entries(data.sources).filter(([, src]) => inShared(src))) as {
    train: FeatureSource;
  } & Record<string, FeatureSource>;
  const pool = await GradPool.start({
    threads,
    backbone,
    sources: shared,
    head: opts.head,
    backend: opts.backend as BackendPreference,
  });
  return { pool, threads, why };
}

/**
 * Work in chunks spread over a pool's threads: chunk c runs on thread c mod `threads` (0 = this
 * thread, with `local`; the others with `remote`, worker index first), and `put` receives every
 * chunk's result. Each chunk is computed by the same code wherever it runs, so the results do not
 * depend on the thread count.
 */
export async function spreadChunks<T>(
  chunks: number[][],
  threads: number,
  local: (idx: number[]) => T,
  remote: (worker: number, idx: number[]) => Promise<T>,
  put: (idx: number[], result: T) => void,
): Promise<void> {
  // The workers' requests are queued first, so they compute while this thread does its share.
  const pending = chunks.flatMap((idx, c) => {
    const k = c % threads;
    return k === 0 ? [] : [remote(k - 1, idx).then((r) => put(idx, r))];
  });
  pending.forEach((p) => p.catch(() => undefined)); // awaited below
  for (let c = 0; c < chunks.length; c += threads) {
    put(chunks[c], local(chunks[c]));
    if (threads > 1) await new Promise((r) => setImmediate(r)); // let finished worker chunks land (and tick)
  }
  await Promise.all(pending);
}

/**
 * Work split into one share per thread: worker w takes the chunks c with c mod `threads` = w + 1 in one
 * request (`remote`, for searches that keep state across chunks), this thread the rest, chunk by chunk
 * (`local`). Returns the workers' results, in worker order, for the caller to merge into its own.
 */
export async function spreadShares<T>(
  chunks: number[][],
  threads: number,
  local: (idx: number[]) => void,
  remote: (worker: number, share: number[][]) => Promise<T>,
): Promise<T[]> {
  const pending = Array.from({ length: threads - 1 }, (_, w) =>
    remote(
      w,
      chunks.filter((_, c) => c % threads === w + 1),
    ),
  );
  pending.forEach((p) => p.catch(() => undefined)); // awaited below
  for (let c = 0; c < chunks.length; c += threads) {
    local(chunks[c]);
    if (threads > 1) await new Promise((r) => setImmediate(r)); // let worker progress land
  }
  return Promise.all(pending);
}

export interface PhaseSetup {
  phase: PhaseConfig;
  loss: LossWeights;
  backboneTraining: boolean;
  /** Stable names of the trained variables, in GradContext.vars order (checked against the worker's). */
  names: string[];
}

/** How long a closing worker may take to finish its queued requests and exit before it is terminated. */
const CLOSE_TIMEOUT_MS = 60_000;

export class GradPool {
  /** Threads computing gradients, the main thread included. */
  readonly threads: number;
  private readonly workers: Worker[];
  private readonly pending = new Map<number, { resolve: (r: GradWorkerReply) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  /** Progress callbacks of long requests, by request id. */
  private readonly progress = new Map<number, (items: number) => void>();
  private failure: Error | null = null;
  private closed = false;
  /** Settles when each worker has exited. */
  private readonly exited: Promise<void>[];

  /** The workers' name of each source they hold. */
  private readonly names: Map<FeatureSource, string>;

  private constructor(workers: Worker[], names: Map<FeatureSource, string>) {
    this.workers = workers;
    this.names = names;
    this.threads = workers.length + 1;
    workers.forEach((w, i) => {
      w.on('message', (m: GradWorkerReply) => {
        if (m.type === 'progress') {
          this.progress.get(m.id)?.(m.items);
          return;
        }
        const p = this.pending.get(m.id);
        if (!p) return;
        this.progress.delete(m.id);
        this.pending.delete(m.id);
        if (m.type === 'error') p.reject(new Error(`gradient worker ${i + 1}: ${m.message}`));
        else p.resolve(m);
      });
      w.on('error', (e) => this.fail(new Error(`gradient worker ${i + 1} crashed: ${e.message}`)));
    });
    this.exited = workers.map(
      (w, i) =>
        new Promise<void>((resolve) =>
          w.on('exit', (code) => {
            if (!this.closed) this.fail(new Error(`gradient worker ${i + 1} exited with code ${code}`));
            resolve();
          }),
        ),
    );
  }

  /**
   * Starts `threads - 1` workers over sources whose images are in shared memory:
   * `train` is trained on; every source can be asked for feature maps.
   */
  static async start(opts: {
    threads: number;
    backbone: TrainableBackbone | null;
    sources: { train: FeatureSource } & Record<string, FeatureSource>;
    head: TrainedHead;
    backend: BackendPreference;
  }): Promise<GradPool> {
    const { backbone, head } = opts;
    if (backbone && !backbone.workerRecipe)
      throw new Error(
        `gradient workers: backbone "${backbone.description}" cannot be rebuilt in a worker (no workerRecipe)`,
      );
    const sources: GradWorkerInit['sources'] = {};
    const featureSources: GradWorkerInit['featureSources'] = {};
    for (const [name, source] of Object.entries(opts.sources)) {
      if (backbone && source.sharedFeatures?.throughBackbone) {
        featureSources[name] = source.sharedFeatures;
      } else if (backbone) {
        if (!source.shared) throw new Error(`gradient workers: the ${name} images are not in shared memory`);
        sources[name] = source.shared;
      } else {
        if (!source.sharedFeatures) throw new Error(`gradient workers: the ${name} features are not in shared memory`);
        featureSources[name] = source.sharedFeatures;
      }
    }
    const init: GradWorkerInit = {
      backbone: backbone?.workerRecipe ?? null,
      headSpec: head.spec,
      sources,
      featureSources,
      backend: opts.backend,
    };
    const workers = Array.from(
      { length: Math.max(0, opts.threads - 1) },
      () => new Worker(new URL('./grad-worker.ts', import.meta.url), { workerData: init }),
    );
    const names = new Map(Object.entries(opts.sources).map(([name, src]) => [src, name] as const));
    const pool = new GradPool(workers, names);
    try {
      await Promise.all(workers.map((w) => pool.request(w, { type: 'ping', id: 0 })));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /** Full weights (and the tied patches, if any) to every worker, and the phase's variables. */
  async beginPhase(setup: PhaseSetup, head: TrainedHead, backbone: TrainableBackbone | null): Promise<void> {
    const weights: HostTensors = new Map([
      ...head.getWeights(),
      ...(backbone ? [...backbone.getWeights()].map(([k, v]) => [`backbone.${k}`, v] as const) : []),
    ]);
    const tied = head.tiedFeatures();
    await Promise.all(
      this.workers.map((w) =>
        this.request(w, {
          type: 'phase',
          id: 0,
          phase: setup.phase,
          loss: setup.loss,
          backboneTraining: setup.backboneTraining,
          names: setup.names,
          weights,
          tied,
        }),
      ),
    );
  }

  /** New values of the trained variables after an optimiser step (messages keep order, so no wait is needed). */
  syncVariables(vars: tf.Variable[]): void {
    const values = vars.map((v) => v.dataSync() as Float32Array);
    for (const w of this.workers) w.postMessage({ type: 'vars', id: -1, values } satisfies GradWorkerRequest);
  }

  /**
   * Gradients of every micro-batch, in order: micro-batch i runs on thread
   * i mod threads (0 = this thread, computed with `local` while workers run).
   */
  async run(batches: MicroBatch[], ctx: GradContext, local: (mb: MicroBatch) => MicroResult): Promise<MicroResult[]> {
    if (this.failure) throw this.failure;
    const remote = this.workers.map((w, k) => {
      const mine = batches.filter((_, i) => i % this.threads === k + 1);
      return mine.length ? this.request(w, { type: 'grads', id: 0, batches: mine }) : Promise.resolve(null);
    });
    // Surface a worker failure only after our own share is done, without an unhandled rejection meanwhile.
    remote.forEach((p) => p.catch(() => undefined));
    const out: MicroResult[] = new Array(batches.length);
    batches.forEach((mb, i) => {
      if (i % this.threads === 0) out[i] = local(mb);
    });
    const replies = await Promise.all(remote);
    replies.forEach((r, k) => {
      if (!r) return;
      if (r.type !== 'grads') throw new Error(`gradient worker ${k + 1}: unexpected reply ${r.type}`);
      let j = 0;
      batches.forEach((_, i) => {
        if (i % this.threads !== k + 1) return;
        const g = r.results[j++];
        out[i] = {
          value: g.value,
          terms: g.terms,
          alignment: g.alignment,
          localisation: g.localisation,
          grads: g.grads.map((data, v) => tf.tensor(data, ctx.vars[v].shape)),
        };
      });
    });
    return out;
  }

  /** The backbone's current weights to every worker (before feature requests). */
  async setBackboneWeights(backbone: TrainableBackbone): Promise<void> {
    const weights = backbone.getWeights();
    await Promise.all(this.workers.map((w) => this.request(w, { type: 'backbone', id: 0, weights })));
  }

  /** Eval-mode feature maps of `indices` of a named source, computed by worker `k` (0-based). */
  async features(k: number, source: string, indices: number[], flipped: boolean[]): Promise<Float32Array> {
    const r = await this.request(this.workers[k], { type: 'features', id: 0, source, indices, flipped });
    if (r.type !== 'features') throw new Error(`gradient worker ${k + 1}: unexpected reply ${r.type}`);
    return r.data;
  }

  /**
   * The workers' name for `source` when they hold it as cached features, else null. A source read through a
   * trainable backbone is not offered: a worker's batch-norm statistics are not the main thread's.
   */
  sourceName(source: FeatureSource): string | null {
    const name = this.names.get(source);
    return name !== undefined && source.sharedFeatures && !source.sharedFeatures.throughBackbone ? name : null;
  }

  /** The head's weights and tied patches to every worker, for evaluation (similarities). */
  async setHead(head: ProtoHead): Promise<void> {
    const weights = head.getWeights();
    const tied = head.tiedFeatures();
    await Promise.all(this.workers.map((w) => this.request(w, { type: 'head', id: 0, weights, tied })));
  }

  /** Eval-mode similarities [n, m] of `indices` of a named source, computed by worker `k` (0-based). */
  async similarities(k: number, source: string, indices: number[], flipped: boolean[]): Promise<Float32Array> {
    const r = await this.request(this.workers[k], { type: 'similarities', id: 0, source, indices, flipped });
    if (r.type !== 'similarities') throw new Error(`gradient worker ${k + 1}: unexpected reply ${r.type}`);
    return r.data;
  }

  /** Global average pooling of `indices` of a named source (the baseline's input), by worker `k` (0-based). */
  async pooled(
    k: number,
    source: string,
    indices: number[],
    flipped: boolean[],
    seeds?: number[],
  ): Promise<Float32Array> {
    const r = await this.request(this.workers[k], { type: 'pooled', id: 0, source, indices, flipped, seeds });
    if (r.type !== 'pooled') throw new Error(`gradient worker ${k + 1}: unexpected reply ${r.type}`);
    return r.data;
  }

  /** Worker `k`'s share of push (push.ts) over `chunks` of a named source; `onProgress` gets items done. */
  async push(
    k: number,
    source: string,
    chunks: number[][],
    exclude: Map<number, Set<number>> | null,
    onProgress?: (items: number) => void,
  ): Promise<PushBest> {
    const r = await this.request(this.workers[k], { type: 'push', id: 0, source, chunks, exclude }, onProgress);
    if (r.type !== 'push') throw new Error(`gradient worker ${k + 1}: unexpected reply ${r.type}`);
    return r.best;
  }

  /** Worker `k`'s share of the nearest-patch search (nearest-patches.ts) over `chunks` of a named source. */
  async nearest(
    k: number,
    source: string,
    chunks: number[][],
    kNearest: number,
    exclude: (ExcludedPatch | null)[] | null,
    onProgress?: (items: number) => void,
  ): Promise<PatchHit[][]> {
    const r = await this.request(
      this.workers[k],
      { type: 'nearest', id: 0, source, chunks, k: kNearest, exclude },
      onProgress,
    );
    if (r.type !== 'nearest') throw new Error(`gradient worker ${k + 1}: unexpected reply ${r.type}`);
    return r.hits;
  }

  /**
   * Asks every worker to finish its queued requests and exit, and waits for that; a worker still busy
   * after CLOSE_TIMEOUT_MS, or any worker once the pool has failed, is terminated instead.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new Error('gradient workers closed'));
    this.pending.clear();
    await Promise.all(
      this.workers.map(async (w, i) => {
        if (this.failure) {
          await w.terminate();
          return;
        }
        w.postMessage({ type: 'close', id: 0 } satisfies GradWorkerRequest);
        await exitOrTerminate(w, this.exited[i], CLOSE_TIMEOUT_MS);
      }),
    );
  }

  private request(w: Worker, msg: GradWorkerRequest, onProgress?: (items: number) => void): Promise<GradWorkerReply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = ++this.nextId;
    if (onProgress) this.progress.set(id, onProgress);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ ...msg, id });
    });
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

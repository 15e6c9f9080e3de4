/**
 * Runs feature-extraction batches on worker threads, each with its own
 * single-threaded copy of the backbone (rebuilt from backbone.recipe). On two
 * cores this beats one two-threaded session on the main thread by about a
 * fifth: no intra-op synchronisation, and decoding, normalising and inference
 * of the two workers interleave freely (see trainer/bench/features.ts).
 */
import { Worker } from 'node:worker_threads';
import { exitOrTerminate } from '../core/worker-exit.ts';
import type { DatasetItem } from '../data/types.ts';
import type { BatchResult } from './feature-batch.ts';
import type { FeatureView } from './feature-view.ts';
import type { WorkerClose, WorkerJob, WorkerMessage } from './feature-worker.ts';
import type { BackboneRecipe } from './types.ts';

export interface PoolBatch {
  items: DatasetItem[];
  views: FeatureView[];
}

export interface PoolOptions {
  recipe: BackboneRecipe;
  /** The main thread's backbone hash; each worker checks its copy against it. */
  hash: string;
  workers: number;
  quantized: boolean;
  decodeConcurrency: number;
  /** Batches queued per worker (the next one decodes while the current one runs). Default 2. */
  depth?: number;
}

/**
 * Sends every batch to the pool; `accept` is called once per batch, one call at
 * a time (in completion order, not batch order). Rejects on the first error.
 */
export async function runInWorkers(
  batches: readonly PoolBatch[],
  opts: PoolOptions,
  accept: (index: number, result: BatchResult) => Promise<void>,
): Promise<{ decodeWaitMs: number; inferenceMs: number }> {
  const stats = { decodeWaitMs: 0, inferenceMs: 0 };
  if (batches.length === 0) return stats;
  const count = Math.max(1, Math.min(opts.workers, batches.length));
  const depth = Math.max(1, opts.depth ?? 2);
  const workers: { worker: Worker; exited: Promise<unknown> }[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let next = 0;
      let finished = 0;
      let failed = false;
      let acceptChain = Promise.resolve();
      const outstanding = new Map<Worker, number>();
      const fail = (e: unknown): void => {
        if (failed) return;
        failed = true;
        // Let a chunk write in progress finish, so a re-run can resume from it.
        const err = e instanceof Error ? e : new Error(String(e));
        acceptChain.then(
          () => reject(err),
          () => reject(err),
        );
      };
      const dispatch = (w: Worker): void => {
        while (!failed && next < batches.length && (outstanding.get(w) ?? 0) < depth) {
          const id = next++;
          const job: WorkerJob = {
            type: 'batch',
            id,
            items: batches[id].items,
            views: batches[id].views,
            quantized: opts.quantized,
            decodeConcurrency: opts.decodeConcurrency,
          };
          outstanding.set(w, (outstanding.get(w) ?? 0) + 1);
          w.postMessage(job);
        }
      };
      for (let i = 0; i < count; i++) {
        const w = new Worker(new URL('./feature-worker.ts', import.meta.url), {
          workerData: { recipe: opts.recipe, hash: opts.hash },
        });
        workers.push({ worker: w, exited: new Promise((r) => w.once('exit', r)) });
        w.on('error', fail);
        w.on('exit', (code) => {
          if (code !== 0 && finished < batches.length) fail(new Error(`feature worker exited with code ${code}`));
        });
        w.on('message', (m: WorkerMessage) => {
          if (m.type === 'ready') dispatch(w);
          else if (m.type === 'error') fail(new Error(`feature worker: ${m.message}`));
          else {
            outstanding.set(w, (outstanding.get(w) ?? 1) - 1);
            stats.decodeWaitMs += m.decodeWaitMs;
            stats.inferenceMs += m.inferenceMs;
            dispatch(w);
            acceptChain = acceptChain
              .then(() =>
                failed ? undefined : accept(m.id, { invalid: m.invalid, skipped: m.skipped, outputs: m.outputs }),
              )
              .then(() => {
                if (++finished === batches.length) resolve();
              })
              .catch(fail);
          }
        });
      }
    });
  } finally {
    await Promise.all(workers.map(closeWorker));
  }
  return stats;
}

/** How long a worker may take to finish its queued batches and exit before it is terminated. */
const CLOSE_TIMEOUT_MS = 60_000;

/**
 * Asks a worker to finish and release its backbone, and waits for it to exit (terminated if it does not).
 * The batches' outcome is settled by then, so what goes wrong while closing is reported as a warning.
 */
async function closeWorker({ worker, exited }: { worker: Worker; exited: Promise<unknown> }): Promise<void> {
  const onMessage = (m: WorkerMessage): void => {
    if (m.type === 'error') console.warn(`warning: feature worker, while closing: ${m.message}`);
  };
  worker.on('message', onMessage);
  worker.postMessage({ type: 'close' } satisfies WorkerClose);
  const onItsOwn = await exitOrTerminate(worker, exited, CLOSE_TIMEOUT_MS);
  worker.off('message', onMessage);
  if (!onItsOwn)
    console.warn(`warning: a feature worker did not exit within ${CLOSE_TIMEOUT_MS / 1000} s of closing; terminated`);
}

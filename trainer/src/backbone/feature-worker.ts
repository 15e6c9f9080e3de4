/**
 * Worker-thread side of feature-pool.ts: rebuilds the backbone from its
 * recipe, then decodes and runs the batches it is sent. A batch's decode
 * starts as soon as it arrives, so it overlaps the previous batch's inference.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decodeMany } from '../data/decode.ts';
import type { DatasetItem } from '../data/types.ts';
import { inferBatch } from './feature-batch.ts';
import type { FeatureView } from './feature-view.ts';
import { buildFromRecipe } from './recipe.ts';
import type { BackboneRecipe, FrozenBackbone } from './types.ts';

export interface WorkerJob {
  type: 'batch';
  id: number;
  items: DatasetItem[];
  views: FeatureView[];
  quantized: boolean;
  decodeConcurrency: number;
}

/**
 * Ends the worker once its queued batches are done: it releases its backbone (an onnxruntime
 * session) itself, because native objects torn down by Worker.terminate() can abort the process.
 */
export interface WorkerClose {
  type: 'close';
}

export type WorkerMessage =
  | { type: 'ready' }
  | {
      type: 'result';
      id: number;
      invalid: number[];
      skipped: { path: string; reason: string }[];
      outputs: (Uint8Array | Float32Array)[];
      decodeWaitMs: number;
      inferenceMs: number;
    }
  | { type: 'error'; message: string };

const port = parentPort;
if (!port) throw new Error('feature-worker.ts runs only as a worker thread');
const { recipe, hash } = workerData as { recipe: BackboneRecipe; hash: string };

const send = (m: WorkerMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
const fail = (e: unknown): void =>
  send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });

let backbone: FrozenBackbone | undefined;
try {
  const built = await buildFromRecipe<FrozenBackbone>(recipe);
  backbone = built;
  if (built.hash !== hash) throw new Error(`worker backbone hash ${built.hash} differs from the main thread's ${hash}`);
  let chain = Promise.resolve();
  // Set by 'close': batches queued behind it (after a failure elsewhere) are skipped, not run.
  let closing = false;
  port.on('message', (job: WorkerJob | WorkerClose) => {
    if (job.type === 'close') {
      closing = true;
      chain = chain
        .then(() => built.dispose())
        .catch(fail)
        .finally(() => port.close());
      return;
    }
    const decoding = decodeMany(job.items, built.preprocess.size, { concurrency: job.decodeConcurrency });
    decoding.catch(() => undefined); // awaited in order below
    chain = chain
      .then(async () => {
        if (closing) return;
        const t0 = performance.now();
        const decoded = await decoding;
        const t1 = performance.now();
        const r = await inferBatch(built, decoded, job.items, job.views, job.quantized);
        // Copies own their buffers, so they can be transferred instead of cloned.
        const outputs = r.outputs.map((o) => o.slice());
        send(
          {
            type: 'result',
            id: job.id,
            invalid: r.invalid,
            skipped: r.skipped,
            outputs,
            decodeWaitMs: t1 - t0,
            inferenceMs: performance.now() - t1,
          },
          outputs.map((o) => o.buffer as ArrayBuffer),
        );
      })
      .catch(fail);
  });
  send({ type: 'ready' });
} catch (e) {
  // A backbone built but refused (hash mismatch) is released here: the thread then ends without native objects.
  await backbone?.dispose().catch(() => undefined);
  fail(e);
}

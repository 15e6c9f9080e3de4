import * as tf from '@tensorflow/tfjs-core';
import type { ProtoHead } from '../head/proto-head.ts';
import type { Progress } from '../core/progress.ts';
import { spreadChunks, type GradPool } from './grad-pool.ts';
import { chunkItems, type FeatureSource } from './sources.ts';

export interface Predictions {
  n: number;
  numClasses: number;
  /** [n, C] row-major. */
  logits: Float32Array;
  labels: Int32Array;
}

/** Eval-mode similarities [n, m] of some items (no dropout): the one computation every thread runs. */
export function headSimilarities(
  head: ProtoHead,
  source: FeatureSource,
  indices: number[],
  flipped: boolean[],
): Float32Array {
  const t = tf.tidy(() => head.forward(source.features(indices, flipped, false)).similarities);
  const data = (t.dataSync() as Float32Array).slice();
  t.dispose();
  return data;
}

/** Items per similarity chunk: the unit of work of one thread. */
const CHUNK = 128;

/**
 * Eval-mode similarities [n, m] of every item of a source, mirrored when `mirrored`. With a pool that
 * holds the source (`pool.sourceName`), chunk c runs on thread c mod threads; each chunk is computed
 * by the same code wherever it runs, so the result does not depend on the thread count.
 */
export async function similaritiesOf(
  head: ProtoHead,
  source: FeatureSource,
  opts: { mirrored?: boolean; pool?: GradPool | null; progress?: Progress; batchSize?: number } = {},
): Promise<Float32Array> {
  const m = head.numPrototypes;
  const mirrored = opts.mirrored ?? false;
  const out = new Float32Array(source.n * m);
  const chunks = chunkItems(source.n, opts.batchSize ?? CHUNK);
  const pool = opts.pool ?? null;
  const name = pool?.sourceName(source) ?? null;
  const threads = pool && name ? pool.threads : 1;
  if (pool && name) await pool.setHead(head);
  const flips = (idx: number[]) => idx.map(() => mirrored);
  await spreadChunks(
    chunks,
    threads,
    (idx) => headSimilarities(head, source, idx, flips(idx)),
    (w, idx) => pool!.similarities(w, name!, idx, flips(idx)),
    (idx, data) => {
      out.set(data, idx[0] * m);
      opts.progress?.tick(idx.length);
    },
  );
  return out;
}

/** Logits from similarities [n, m], summed in float64 as the ONNX export does. */
function predictionsFrom(head: ProtoHead, sims: Float32Array, source: FeatureSource): Predictions {
  return {
    n: source.n,
    numClasses: head.spec.numClasses,
    logits: head.exactLogits(sims, source.n),
    labels: source.labels,
  };
}

/**
 * Logits for every item of a source (eval mode: no dropout, no flip; summed in float64 like the ONNX export),
 * spread over the gradient threads when `pool` holds the source.
 */
export async function predict(
  head: ProtoHead,
  source: FeatureSource,
  pool: GradPool | null = null,
): Promise<Predictions> {
  return predictionsFrom(head, await similaritiesOf(head, source, { pool }), source);
}

export interface Accuracy {
  n: number;
  top1: number;
  top5: number;
  perClass: number[];
}

/** Top-1, top-5 and per-class top-1 (NaN for a class with no items). */
export function accuracy(p: Predictions): Accuracy {
  const C = p.numClasses;
  let top1 = 0;
  let top5 = 0;
  const hit = new Array<number>(C).fill(0);
  const count = new Array<number>(C).fill(0);
  for (let i = 0; i < p.n; i++) {
    const row = p.logits.subarray(i * C, (i + 1) * C);
    const y = p.labels[i];
    const target = row[y];
    // Rank = how many classes come before the true one: a higher score, or the same score and a lower index
    // (argmax takes the first maximum), so tied logits never all count as right.
    let rank = 0;
    for (let c = 0; c < C; c++) if (row[c] > target || (row[c] === target && c < y)) rank++;
    count[y]++;
    if (rank === 0) {
      top1++;
      hit[y]++;
    }
    if (rank < 5) top5++;
  }
  return {
    n: p.n,
    top1: p.n ? top1 / p.n : NaN,
    top5: p.n ? top5 / p.n : NaN,
    perClass: hit.map((h, c) => (count[c] ? h / count[c] : NaN)),
  };
}

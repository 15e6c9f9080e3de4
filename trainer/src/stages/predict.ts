import * as tf from '@tensorflow/tfjs-core';
import type { ProtoHead } from '../head/proto-head.ts';
import type { FeatureSource } from './sources.ts';

export interface Predictions {
  n: number;
  numClasses: number;
  /** [n, C] row-major. */
  logits: Float32Array;
  labels: Int32Array;
}

/** Logits for every item of a source (eval mode: no dropout, no flip; summed in float64 like the ONNX export). */
export function predict(head: ProtoHead, source: FeatureSource, batchSize = 128): Predictions {
  const C = head.spec.numClasses;
  const logits = new Float32Array(source.n * C);
  for (let s = 0; s < source.n; s += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, source.n - s) }, (_, k) => s + k);
    const out = tf.tidy(
      () =>
        head.forward(
          source.features(
            idx,
            idx.map(() => false),
            false,
          ),
        ).similarities,
    );
    logits.set(head.exactLogits(out.dataSync() as Float32Array, idx.length), s * C);
    out.dispose();
  }
  return { n: source.n, numClasses: C, logits, labels: source.labels };
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
    // Rank = how many classes score strictly higher than the true one.
    let rank = 0;
    for (let c = 0; c < C; c++) if (row[c] > target) rank++;
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

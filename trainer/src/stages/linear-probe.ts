import * as tf from '@tensorflow/tfjs-core';
import { linear } from '../head/fast-ops.ts';
import { crossEntropy } from '../head/losses.ts';
import { Adam } from '../optim/adam.ts';
import { Progress } from '../core/progress.ts';
import type { Rng } from '../core/rng.ts';
import { spreadChunks, type GradPool } from './grad-pool.ts';
import { chunkItems, type FeatureSource } from './sources.ts';

/** Global average pooling of some items' feature maps [B, D]: the one computation every thread runs. */
export function pooledChunk(source: FeatureSource, idx: number[], flipped: boolean[], seeds?: number[]): Float32Array {
  const t = tf.tidy(() => tf.mean(source.features(idx, flipped, false, seeds), [1, 2]));
  const data = (t.dataSync() as Float32Array).slice();
  t.dispose();
  return data;
}

/**
 * Global-average-pooled features [n, D] of a source; with `flip`, its mirrored copies and its cached augmented
 * copies too (the training views the prototype model draws from). Spread over the gradient threads when
 * `pool` holds the source.
 */
export async function pooledFeatures(
  source: FeatureSource,
  opts: { flip: boolean; batchSize?: number; quiet?: boolean; label?: string; pool?: GradPool | null },
): Promise<{ x: Float32Array; labels: Int32Array; n: number; dim: number }> {
  const D = source.shape[2];
  const mirrored = opts.flip && source.canFlip ? 1 : 0;
  const augmented = opts.flip ? (source.cachedCopies ?? 0) : 0;
  const copies = 1 + mirrored + augmented;
  const n = source.n * copies;
  const x = new Float32Array(n * D);
  const labels = new Int32Array(n);
  const progress = new Progress({ label: opts.label ?? 'pooling', total: n, unit: 'img', quiet: opts.quiet });
  const pool = opts.pool ?? null;
  const name = pool?.sourceName(source) ?? null;
  const threads = pool && name ? pool.threads : 1;
  const chunks = chunkItems(source.n, opts.batchSize ?? 128);
  for (let copy = 0; copy < copies; copy++) {
    const flips = (idx: number[]) => idx.map(() => copy === 1 && mirrored === 1);
    // Seed a (a = 1..A) picks augmented copy a (cachedSource).
    const seeds = (idx: number[]) => (copy > mirrored ? idx.map(() => copy - mirrored) : undefined);
    await spreadChunks(
      chunks,
      threads,
      (idx) => pooledChunk(source, idx, flips(idx), seeds(idx)),
      (w, idx) => pool!.pooled(w, name!, idx, flips(idx), seeds(idx)),
      (idx, data) => {
        x.set(data, (copy * source.n + idx[0]) * D);
        progress.tick(idx.length);
      },
    );
    labels.set(source.labels, copy * source.n);
  }
  progress.finish();
  return { x, labels, n, dim: D };
}

/** The baseline's recipe, shared by `train` (its summary row) and `baseline` (the command). */
export const BASELINE_TRAINING = { epochs: 30, lr: 1e-3, batchSize: 128, weightDecay: 1e-4, inputDropout: 0.2 };

export interface LinearModel {
  /** [D, C] */
  w: Float32Array;
  /** [C] */
  b: Float32Array;
  dim: number;
  numClasses: number;
}

/**
 * Softmax regression with Adam and L2 weight decay: the paper's "Baseline"
 * column when run on pooled features, and the class-evidence probe that picks
 * initial prototype patches.
 */
export function trainLinear(
  data: { x: Float32Array; labels: Int32Array; n: number; dim: number },
  numClasses: number,
  opts: {
    epochs: number;
    lr: number;
    batchSize: number;
    weightDecay: number;
    inputDropout: number;
    rng: Rng;
    quiet?: boolean;
    onEpoch?: (epoch: number, model: LinearModel, loss: number) => void;
  },
): LinearModel {
  const D = data.dim;
  const w = tf.variable(tf.zeros([D, numClasses]));
  const b = tf.variable(tf.zeros([numClasses]));
  const opt = new Adam([
    {
      name: 'linear',
      lr: opts.lr,
      vars: [
        ['w', w],
        ['b', b],
      ],
    },
  ]);
  const progress = new Progress({ label: 'linear', total: opts.epochs, unit: 'epoch', quiet: opts.quiet });
  const snapshot = (): LinearModel => ({
    w: w.dataSync().slice() as Float32Array,
    b: b.dataSync().slice() as Float32Array,
    dim: D,
    numClasses,
  });
  for (let e = 0; e < opts.epochs; e++) {
    // Cosine decay: a stable end point without tuning a step schedule.
    opt.setLearningRate('linear', opts.lr * 0.5 * (1 + Math.cos((Math.PI * e) / opts.epochs)));
    const order = opts.rng.shuffle(Array.from({ length: data.n }, (_, i) => i));
    let lossSum = 0;
    for (let s = 0; s < order.length; s += opts.batchSize) {
      const batch = order.slice(s, s + opts.batchSize);
      const xb = new Float32Array(batch.length * D);
      batch.forEach((i, k) => xb.set(data.x.subarray(i * D, (i + 1) * D), k * D));
      const yb = Int32Array.from(batch, (i) => data.labels[i]);
      const seed = opts.rng.int(2 ** 31);
      const { value, grads } = tf.variableGrads(() => {
        let x: tf.Tensor2D = tf.tensor2d(xb, [batch.length, D]);
        if (opts.inputDropout > 0) x = tf.dropout(x, opts.inputDropout, undefined, seed) as tf.Tensor2D;
        const logits = tf.add(linear(x, w as tf.Tensor2D, { inputGrad: false }), b) as tf.Tensor2D;
        const ce = crossEntropy(logits, tf.tensor1d(yb, 'int32'));
        return tf.add(ce, tf.mul(tf.sum(tf.square(w)), opts.weightDecay / 2)) as tf.Scalar;
      }, [w, b]);
      opt.apply(grads);
      lossSum += value.dataSync()[0] * batch.length;
      tf.dispose([value, ...Object.values(grads)]);
    }
    progress.tick(1, `loss ${(lossSum / data.n).toFixed(3)}`);
    opts.onEpoch?.(e, snapshot(), lossSum / data.n);
  }
  progress.finish();
  const model = snapshot();
  opt.dispose();
  w.dispose();
  b.dispose();
  return model;
}

/** Logits [n, C] of a linear model. */
export function linearLogits(model: LinearModel, x: Float32Array, n: number): Float32Array {
  return tf.tidy(
    () =>
      tf
        .add(
          tf.matMul(tf.tensor2d(x, [n, model.dim]), tf.tensor2d(model.w, [model.dim, model.numClasses])),
          tf.tensor1d(model.b),
        )
        .dataSync() as Float32Array,
  );
}

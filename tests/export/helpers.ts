import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import * as ort from 'onnxruntime-node';
import { join } from 'node:path';
import { createSmallCnn } from '../../trainer/src/backbone/small-cnn.ts';
import type { AddOnLayerSpec, HeadSpec } from '../../trainer/src/head/proto-head.ts';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import type { TrainConfig } from '../../trainer/src/config/config.ts';
import { saveModel } from '../../trainer/src/model/model-file.ts';
import { resolveConfig } from '../../trainer/src/config/presets.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';

export async function useCpuBackend(): Promise<void> {
  await initBackend('cpu', { quiet: true });
}

/** A head with every variable seeded-random (non-zero biases, a dense last layer), so each weight matters. */
export function randomHead(spec: HeadSpec, seed: number): ProtoHead {
  const head = new ProtoHead(spec, new Rng(seed));
  const rng = new Rng(seed + 1000);
  const w = head.getWeights();
  for (const [name, t] of w) {
    if (name.endsWith('.b')) t.data = t.data.map(() => rng.normal() * 0.2);
    if (name === 'head.last_layer') t.data = t.data.map(() => rng.normal());
  }
  head.setWeights(w);
  return head;
}

/**
 * Seeded values for every weight of a tfjs model: kernels N(0, 0.3^2), and batch-norm
 * statistics away from the identity (mean 0 / var 1 would make folding trivially right).
 */
export function randomizeLayers(model: LayersModel, seed: number): void {
  const rng = new Rng(seed);
  for (const w of model.weights) {
    const kind = w.originalName.split('/').pop()!;
    const n = w.shape.reduce<number>((a, d) => a * (d as number), 1);
    const gen: () => number =
      kind === 'gamma'
        ? () => 0.5 + rng.next()
        : kind === 'moving_variance'
          ? () => 0.3 + 2 * rng.next()
          : kind === 'moving_mean' || kind === 'beta' || kind === 'bias'
            ? () => rng.normal() * 0.3
            : () => rng.normal() * 0.3;
    const t = tf.tensor(Float32Array.from({ length: n }, gen), w.shape as number[]);
    w.write(t);
    t.dispose();
  }
}

export async function runOrt(
  bytes: Uint8Array,
  feeds: Record<string, ort.Tensor>,
  opts: ort.InferenceSession.SessionOptions = {},
): Promise<Record<string, ort.Tensor>> {
  const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3, ...opts });
  try {
    return (await s.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await s.release();
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** NHWC → NCHW. */
export function toNchw(x: ArrayLike<number>, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(n * c * h * w);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++)
        for (let ch = 0; ch < c; ch++) out[((i * c + ch) * h + y) * w + xx] = x[((i * h + y) * w + xx) * c + ch];
  return out;
}

/** Seeded N(0, scale^2) values. */
export function randomValues(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

export interface HeadReference {
  logits: Float32Array;
  similarities: Float32Array;
  /** Prototype-major [B, m, H, W], as the export emits. */
  distances: Float32Array;
}

/** The trainer's head on NHWC features, distances re-laid from [B, HW, m] to [B, m, HW]. */
export function headReference(
  head: ProtoHead,
  features: Float32Array,
  shape: [number, number, number, number],
): HeadReference {
  const [b, h, w] = shape;
  const m = head.numPrototypes;
  const f = tf.tensor4d(features, shape);
  const out = head.forward(f);
  const maps = head.distanceMaps(f);
  const d = maps.dataSync();
  const distances = new Float32Array(b * m * h * w);
  for (let i = 0; i < b; i++)
    for (let p = 0; p < h * w; p++)
      for (let j = 0; j < m; j++) distances[(i * m + j) * h * w + p] = d[(i * h * w + p) * m + j];
  const ref = {
    logits: Float32Array.from(out.logits.dataSync()),
    similarities: Float32Array.from(out.similarities.dataSync()),
    distances,
  };
  tf.dispose([f, out.logits, out.minDistances, out.similarities, maps]);
  return ref;
}

export const TINY_HEAD: HeadSpec = {
  inputChannels: 6,
  addOn: [
    { channels: 10, activation: 'relu' },
    { channels: 5, activation: 'sigmoid' },
  ],
  numClasses: 3,
  prototypesPerClass: 2,
  incorrectClassWeight: -0.5,
};

/**
 * A run directory holding an untrained small-CNN ProtoPNet with random weights
 * (batch-norm statistics moved away from identity, as training would), the
 * way export tests need one: the CNN and head stay live for reference forwards.
 */
export async function randomSmallCnnRun(
  dir: string,
  o: {
    size: number;
    channels: number[];
    addOn: AddOnLayerSpec[];
    prototypesPerClass: number;
    classes: string[];
    cnnSeed: number;
    headSeed: number;
  },
): Promise<{ config: TrainConfig; cnn: ReturnType<typeof createSmallCnn>; head: ProtoHead }> {
  const config = resolveConfig('demo', {
    backend: 'cpu',
    backbone: { kind: 'small-cnn', inputSize: o.size, channels: o.channels, convsPerStage: 2 },
    head: { addOn: o.addOn, prototypesPerClass: o.prototypesPerClass },
    featureCacheDir: join(dir, 'cache'),
  });
  const cnn = createSmallCnn({ inputSize: o.size, channels: o.channels, seed: config.seed, convsPerStage: 2 });
  randomizeLayers(cnn.model, o.cnnSeed);
  const head = randomHead(
    {
      inputChannels: o.channels[o.channels.length - 1],
      addOn: o.addOn,
      numClasses: o.classes.length,
      prototypesPerClass: o.prototypesPerClass,
      incorrectClassWeight: -0.5,
    },
    o.headSeed,
  );
  await saveModel(join(dir, 'model'), {
    config,
    classes: o.classes,
    head,
    backbone: cnn,
    push: null,
    trainItems: [],
    pruning: null,
  });
  return { config, cnn, head };
}

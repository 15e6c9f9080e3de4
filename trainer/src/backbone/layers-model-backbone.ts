/**
 * Wraps a tfjs-layers model (NHWC image → NHWC feature map) as both a frozen
 * backbone (batched extract to Float32Array) and a trainable one (apply,
 * variables, weights as named arrays for checkpoints).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { BackboneRecipe, FeatureShape, FrozenBackbone, PreprocessSpec, TrainableBackbone } from './types.ts';

export type LayersBackbone = FrozenBackbone & TrainableBackbone & { readonly model: LayersModel };

export interface WrapOptions {
  description: string;
  preprocess: PreprocessSpec;
  /** Fixed content hash, or a function computing it (e.g. from the current weights). */
  hash: string | (() => string);
  /** Largest batch per predict() call in extract(), to bound memory. Default 16. */
  extractBatch?: number;
  /** Disposed with the backbone (e.g. the full model the cut model was taken from). */
  owner?: { dispose(): unknown };
  /** Rebuilds the architecture in a worker thread (TrainableBackbone.workerRecipe). */
  workerRecipe?: BackboneRecipe;
}

export function wrapLayersModel(model: LayersModel, opts: WrapOptions): LayersBackbone {
  const out = model.outputs[0].shape;
  if (model.outputs.length !== 1 || out.length !== 4 || out.slice(1).some((d) => d === null)) {
    throw new Error(
      `tfjs backbone: model output must be one NHWC feature map with known size, got ${JSON.stringify(model.outputs.map((o) => o.shape))}`,
    );
  }
  const featureShape: FeatureShape = [out[1]!, out[2]!, out[3]!];
  const featureSize = featureShape[0] * featureShape[1] * featureShape[2];
  const pre = opts.preprocess;
  const inputSize = pre.size * pre.size * 3;
  const step = opts.extractBatch ?? 16;
  const byName = (): Map<string, tf.Variable> => {
    const m = new Map<string, tf.Variable>();
    // originalName is stable across processes (name may gain _1 suffixes), so checkpoints use it.
    for (const w of model.weights) m.set(w.originalName, w.read() as tf.Variable);
    return m;
  };
  const hashOf = typeof opts.hash === 'string' ? () => opts.hash as string : opts.hash;

  return {
    model,
    get hash() {
      return hashOf();
    },
    description: opts.description,
    workerRecipe: opts.workerRecipe,
    preprocess: pre,
    featureShape,
    async extract(batch, n) {
      if (batch.length < n * inputSize)
        throw new Error(`tfjs backbone: batch has ${batch.length} floats, expected ${n}x${pre.size}x${pre.size}x3`);
      const result = new Float32Array(n * featureSize);
      for (let s = 0; s < n; s += step) {
        const m = Math.min(step, n - s);
        const y = tf.tidy(
          () =>
            model.predict(
              tf.tensor4d(batch.subarray(s * inputSize, (s + m) * inputSize), [m, pre.size, pre.size, 3]),
            ) as tf.Tensor,
        );
        result.set((await y.data()) as Float32Array, s * featureSize);
        y.dispose();
      }
      return result;
    },
    apply(x, training) {
      return model.apply(x, { training }) as tf.Tensor4D;
    },
    trainableVariables() {
      return model.trainableWeights.map((w) => w.read() as tf.Variable);
    },
    getWeights() {
      const m = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const [name, v] of byName())
        m.set(name, { shape: v.shape.slice(), data: Float32Array.from(v.dataSync() as Float32Array) });
      return m;
    },
    setWeights(weights) {
      const vars = byName();
      const missing = [...vars.keys()].filter((k) => !weights.has(k));
      if (missing.length > 0)
        throw new Error(
          `tfjs backbone: setWeights is missing ${missing.length} weight(s), e.g. ${missing.slice(0, 3).join(', ')}`,
        );
      for (const [name, v] of vars) {
        const w = weights.get(name)!;
        if (w.shape.join('x') !== v.shape.join('x'))
          throw new Error(`tfjs backbone: weight ${name} has shape [${w.shape}], expected [${v.shape}]`);
        tf.tidy(() => v.assign(tf.tensor(w.data, w.shape, 'float32')));
      }
    },
    async dispose() {
      model.dispose();
      opts.owner?.dispose();
    },
  };
}

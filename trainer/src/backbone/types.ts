import type { PreprocessSpec } from '../data/types.ts';

// Defined with the data (decode.ts applies it); backbones declare theirs.
export type { PreprocessSpec };

/** Shape of a feature map: height, width, channels (NHWC without N). */
export type FeatureShape = [number, number, number];

/**
 * A frozen feature extractor. Input: a batch of images already resized to
 * preprocess.size and normalised, NHWC float32. Output: NHWC float32 feature maps.
 */
export interface FrozenBackbone {
  /** Content hash of the weights (sha256 hex), used in feature-cache keys. */
  readonly hash: string;
  readonly description: string;
  readonly preprocess: PreprocessSpec;
  readonly featureShape: FeatureShape;
  extract(batch: Float32Array, n: number): Promise<Float32Array>;
  dispose(): Promise<void>;
  /**
   * Present when the feature map is natively 8-bit (an int8 ONNX model): the
   * float features equal (q - zeroPoint) * scale exactly, so caches can store q.
   */
  readonly quantization?: FeatureQuantization;
  /**
   * Present when float features have a natural 8-bit grid (an int8 network run on float kernels: the grid its
   * published form rounds the tapped tensor to), so a cache may store them as uint8 at half a step's error.
   */
  readonly storageGrid?: FeatureQuantization;
  /** The raw 8-bit feature maps (NHWC, uint8) for a batch; present with `quantization`. */
  extractQuantized?(batch: Float32Array, n: number): Promise<Uint8Array>;
  /**
   * How to build a single-threaded copy of this backbone in a worker thread
   * (feature extraction then runs one copy per core). Absent: main thread only.
   */
  readonly recipe?: BackboneRecipe;
}

/** `(await import(module))[factory](options)` builds the backbone; options must be structured-cloneable. */
export interface BackboneRecipe {
  /** Module URL (import.meta.url of the factory's module). */
  module: string;
  factory: string;
  options: unknown;
}

/** Linear 8-bit quantisation of a feature map: value = (q - zeroPoint) * scale, q in 0..255. */
export interface FeatureQuantization {
  scale: number;
  zeroPoint: number;
}

/**
 * A backbone whose weights train with the head (joint stage). Implemented with
 * tfjs-layers so that the same object serves inference and gradients.
 */
export interface TrainableBackbone {
  readonly description: string;
  readonly preprocess: PreprocessSpec;
  readonly featureShape: FeatureShape;
  /** NHWC float input (normalised) -> NHWC feature map. `training` toggles dropout/batch-norm behaviour. */
  apply(x: import('@tensorflow/tfjs-core').Tensor4D, training: boolean): import('@tensorflow/tfjs-core').Tensor4D;
  /**
   * `apply`, also returning the maps of an inner tensor of the network (by name), e.g. shallow features for
   * the alignment term. Absent when the backbone cannot name its inner tensors.
   */
  applyWithInner?(
    x: import('@tensorflow/tfjs-core').Tensor4D,
    training: boolean,
    inner: string,
  ): [import('@tensorflow/tfjs-core').Tensor4D, import('@tensorflow/tfjs-core').Tensor4D];
  /** The tf.Variables to optimise in the joint stage. */
  trainableVariables(): import('@tensorflow/tfjs-core').Variable[];
  /** All weights as named float arrays (for checkpoints) and back. */
  getWeights(): Map<string, { shape: number[]; data: Float32Array }>;
  setWeights(weights: Map<string, { shape: number[]; data: Float32Array }>): void;
  dispose(): void;
  /**
   * How to build the same architecture in a worker thread (gradient workers,
   * stages/grad-pool.ts); its weights are then sent over. Absent: main thread only.
   */
  readonly workerRecipe?: BackboneRecipe;
}

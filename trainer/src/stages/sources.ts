import * as tf from '@tensorflow/tfjs-core';
import { createFeatureStore, type FeatureStoreSpec } from '../backbone/feature-store.ts';
import type { FeatureShape, PreprocessSpec, TrainableBackbone } from '../backbone/types.ts';
import type { RgbImage } from '../data/types.ts';
import { toNHWC } from '../data/decode.ts';
import { augmentedInput, augmentedPointMap, type AugmentSpec, type PointMap } from '../data/augment.ts';
import { imageViews, type SharedImages } from '../data/shared-images.ts';
import { Rng } from '../core/rng.ts';

/** Minimal view of a feature store (backbone/feature-store.ts implements it). */
export interface FeatureStoreLike {
  readonly n: number;
  readonly shape: FeatureShape;
  batch(indices: number[], out?: Float32Array): Float32Array;
}

/**
 * Where a training batch's feature maps come from. Frozen backbones read the
 * on-disk cache; trainable ones run the backbone inside the gradient tape.
 * `flipped[i]` picks the mirrored copy of item i (augmentation).
 */
export interface FeatureSource {
  readonly n: number;
  readonly shape: FeatureShape;
  readonly labels: Int32Array;
  readonly canFlip: boolean;
  /**
   * True when `augmentSeeds` are honoured: images in memory with an augmentation spec, or cached
   * feature maps of augmented copies (`cachedCopies`).
   */
  readonly canAugment: boolean;
  /** Augmented copies whose maps are cached: seeds pick among them whether or not the backbone trains. */
  readonly cachedCopies?: number;
  /**
   * Call inside a tf.tidy / gradient closure. `augmentSeeds[i]` (training only)
   * seeds item i's random augmentation, so a run stays reproducible and resumable.
   */
  features(indices: number[], flipped: boolean[], training: boolean, augmentSeeds?: number[]): tf.Tensor4D;
  /**
   * `features` of a training batch and the maps of a named inner tensor of the backbone (shallow alignment).
   * Present when a trainable backbone runs on the images and can name its inner tensors.
   */
  featuresWithInner?(
    indices: number[],
    flipped: boolean[],
    training: boolean,
    augmentSeeds: number[] | undefined,
    inner: string,
  ): [tf.Tensor4D, tf.Tensor4D];
  /**
   * Where points of item `item`'s model input land in the augmented view `features` draws for `seed`
   * (mirrored when `flip`). Present when the source augments images itself.
   */
  augmentedView?(item: number, seed: number, flip: boolean, inputSize: number): PointMap;
  /** Present when the images sit in shared memory: a gradient worker rebuilds the same source from it. */
  readonly shared?: SharedImageSource;
  /** Present when cached feature maps sit in shared memory: a gradient worker rebuilds the same source from it. */
  readonly sharedFeatures?: SharedFeatureSource;
}

/** A feature store's layout and its buffer (a view of a SharedArrayBuffer). */
export interface SharedStore {
  spec: FeatureStoreSpec;
  data: Uint8Array | Uint16Array | Float32Array;
}

/** Everything a worker thread needs to rebuild a cached-feature source (structured-cloneable, features not copied). */
export interface SharedFeatureSource {
  orig: SharedStore;
  flip: SharedStore | null;
  /** Maps of augmented copies of the training images (each with its own random transform and mirroring). */
  augmented?: SharedStore[];
  /** Store index of each item (items the backbone could not read are left out). */
  keep: Int32Array;
  labels: Int32Array;
  /** The cached maps are a frozen bottom's: the trainable backbone (its top) runs on them (throughBackbone). */
  throughBackbone?: boolean;
}

/** Everything a worker thread needs to rebuild an image source (structured-cloneable, images not copied). */
export interface SharedImageSource {
  images: SharedImages;
  labels: Int32Array;
  preprocess: PreprocessSpec;
  augment: AugmentSpec | null;
}

/**
 * Cached maps: item i's original, or its mirrored copy when `flipped[i]`. With augmented copies, a training
 * item's seed picks one of A + 1 views with equal chance: the plain image (mirrored or not) or copy 1..A.
 */
export function cachedSource(
  orig: FeatureStoreLike,
  flip: FeatureStoreLike | null,
  labels: Int32Array,
  augmented: readonly FeatureStoreLike[] = [],
): FeatureSource {
  const shape = orig.shape;
  const per = shape[0] * shape[1] * shape[2];
  const stores = [orig, flip, ...augmented];
  return {
    n: orig.n,
    shape,
    labels,
    canFlip: flip !== null,
    canAugment: augmented.length > 0,
    cachedCopies: augmented.length,
    features(indices, flipped, _training, augmentSeeds) {
      const out = new Float32Array(indices.length * per);
      // Store of each item: 0 original, 1 mirrored, 2.. augmented copies.
      const which = indices.map((_, k) => {
        const pick = augmentSeeds && augmented.length ? augmentSeeds[k] % (augmented.length + 1) : 0;
        if (pick > 0) return pick + 1;
        return flipped[k] && flip ? 1 : 0;
      });
      stores.forEach((store, s) => {
        if (!store) return;
        const slots = which.flatMap((w, k) => (w === s ? [k] : []));
        if (!slots.length) return;
        const data = store.batch(slots.map((k) => indices[k]));
        slots.forEach((slot, k) => out.set(data.subarray(k * per, (k + 1) * per), slot * per));
      });
      return tf.tensor4d(out, [indices.length, shape[0], shape[1], shape[2]]);
    },
  };
}

export function imageSource(
  images: RgbImage[],
  labels: Int32Array,
  pre: PreprocessSpec,
  backbone: TrainableBackbone,
  augment: AugmentSpec | null = null,
): FeatureSource {
  return {
    n: images.length,
    shape: backbone.featureShape,
    labels,
    canFlip: true,
    canAugment: augment !== null,
    features(indices, flipped, training, augmentSeeds) {
      const pixels = (idx: number[], from: number) =>
        batchPixels(images, pre, augment, idx, from, flipped, training, augmentSeeds);
      // Inference batches (prediction, push, analysis) can be large; a full-size CNN's
      // activations for 128 images overflow wasm's heap, so they run in chunks.
      if (training || indices.length <= INFERENCE_CHUNK) return backbone.apply(pixels(indices, 0), training);
      const parts: tf.Tensor4D[] = [];
      for (let s = 0; s < indices.length; s += INFERENCE_CHUNK) {
        const chunk = indices.slice(s, s + INFERENCE_CHUNK);
        parts.push(tf.tidy(() => backbone.apply(pixels(chunk, s), false)));
      }
      const out = tf.concat(parts, 0) as tf.Tensor4D;
      tf.dispose(parts);
      return out;
    },
    featuresWithInner: backbone.applyWithInner
      ? (indices, flipped, training, augmentSeeds, inner) =>
          backbone.applyWithInner!(
            batchPixels(images, pre, augment, indices, 0, flipped, training, augmentSeeds),
            training,
            inner,
          )
      : undefined,
    augmentedView: augment
      ? (item, seed, flip, inputSize) => augmentedPointMap(images[item].width, augment, seed, inputSize, flip)
      : undefined,
  };
}

/** Items `idx` (batch positions from `from` on) as a normalised NHWC batch, augmented when training. */
function batchPixels(
  images: RgbImage[],
  pre: PreprocessSpec,
  augment: AugmentSpec | null,
  idx: number[],
  from: number,
  flipped: boolean[],
  training: boolean,
  augmentSeeds: number[] | undefined,
): tf.Tensor4D {
  const [h, w] = [pre.size, pre.size];
  const per = h * w * 3;
  const buf = new Float32Array(idx.length * per);
  idx.forEach((item, j) => {
    const k = from + j;
    const seed = augmentSeeds?.[k];
    if (training && augment && seed !== undefined)
      buf.set(augmentedInput(images[item], augment, new Rng(seed), flipped[k], pre), j * per);
    else buf.set(toNHWC([images[item]], pre, flipped[k]), j * per);
  });
  return tf.tensor4d(buf, [idx.length, h, w, 3]);
}

/** A cached-feature source over stores in shared memory, so gradient workers can share them. */
export function sharedFeatureSource(shared: SharedFeatureSource): FeatureSource {
  const view = (s: SharedStore): FeatureStoreLike => {
    const store = createFeatureStore(s.spec, s.data);
    return {
      n: shared.keep.length,
      shape: store.shape,
      batch: (idx, out) =>
        store.batch(
          idx.map((i) => shared.keep[i]),
          out,
        ),
    };
  };
  return {
    ...cachedSource(
      view(shared.orig),
      shared.flip ? view(shared.flip) : null,
      shared.labels,
      (shared.augmented ?? []).map(view),
    ),
    sharedFeatures: shared,
  };
}

/**
 * Cached maps of a network's frozen bottom through its trainable top: partial fine-tuning,
 * where only the top runs inside the gradient tape.
 */
export function throughBackbone(cached: FeatureSource, top: TrainableBackbone): FeatureSource {
  return {
    ...cached,
    shape: top.featureShape,
    features: (indices, flipped, training, seeds) =>
      top.apply(cached.features(indices, flipped, false, seeds), training),
    sharedFeatures: cached.sharedFeatures ? { ...cached.sharedFeatures, throughBackbone: true } : undefined,
  };
}

/** An image source over images in a SharedArrayBuffer, so gradient workers can share them. */
export function sharedImageSource(shared: SharedImageSource, backbone: TrainableBackbone): FeatureSource {
  return {
    ...imageSource(imageViews(shared.images), shared.labels, shared.preprocess, backbone, shared.augment),
    shared,
  };
}

/** Images per backbone call outside training. */
const INFERENCE_CHUNK = 16;

/** Subset of a source (e.g. valid items only). */
export function subsetSource(src: FeatureSource, keep: number[]): FeatureSource {
  const labels = Int32Array.from(keep, (i) => src.labels[i]);
  return {
    n: keep.length,
    shape: src.shape,
    labels,
    canFlip: src.canFlip,
    canAugment: src.canAugment,
    cachedCopies: src.cachedCopies,
    features: (indices, flipped, training, seeds) =>
      src.features(
        indices.map((i) => keep[i]),
        flipped,
        training,
        seeds,
      ),
    featuresWithInner: src.featuresWithInner
      ? (indices, flipped, training, seeds, inner) =>
          src.featuresWithInner!(
            indices.map((i) => keep[i]),
            flipped,
            training,
            seeds,
            inner,
          )
      : undefined,
  };
}

/** Items 0..n-1 in consecutive chunks of `size`: the unit of work of one thread. */
export function chunkItems(n: number, size: number): number[][] {
  const chunks: number[][] = [];
  for (let s = 0; s < n; s += size) chunks.push(Array.from({ length: Math.min(size, n - s) }, (_, k) => s + k));
  return chunks;
}

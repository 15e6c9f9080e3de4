import * as tf from '@tensorflow/tfjs-core';
import type { FrozenBackbone, PreprocessSpec, TrainableBackbone } from '../backbone/types.ts';
import { decodeImage, toNHWC } from '../data/decode.ts';
import type { RgbImage } from '../data/types.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import type { FeatureShape } from '../backbone/types.ts';

/** Per image: squared distance of every patch to every prototype, [HW, m] row-major (patch-major). */
export interface ImageDistances {
  data: Float32Array;
  height: number;
  width: number;
  prototypes: number;
}

/**
 * Runs a trained model (backbone + head) on pixels, in eval mode, for analysis
 * that cannot use the feature cache: explanations of new photos, perturbed
 * inputs (stability), heatmaps.
 */
export class ModelRunner {
  readonly head: ProtoHead;
  readonly preprocess: PreprocessSpec;
  readonly featureShape: FeatureShape;
  private readonly frozen: FrozenBackbone | null;
  private readonly trainable: TrainableBackbone | null;

  constructor(head: ProtoHead, backbone: { frozen: FrozenBackbone | null; trainable: TrainableBackbone | null }) {
    const b = backbone.frozen ?? backbone.trainable;
    if (!b) throw new Error('ModelRunner needs a backbone');
    this.head = head;
    this.frozen = backbone.frozen;
    this.trainable = backbone.trainable;
    this.preprocess = b.preprocess;
    // Both: the frozen bottom feeds the trainable top (partial fine-tuning).
    this.featureShape = (backbone.trainable ?? b).featureShape;
  }

  /** Backbone feature maps [n, H, W, D] for normalised NHWC input, in eval mode. */
  async features(input: Float32Array, n: number): Promise<tf.Tensor4D> {
    const [H, W, D] = this.featureShape;
    const size = this.preprocess.size;
    if (this.frozen && this.trainable) {
      const [h, w, d] = this.frozen.featureShape;
      const bottom = await this.frozen.extract(input, n);
      return tf.tidy(() => this.trainable!.apply(tf.tensor4d(bottom, [n, h, w, d]), false));
    }
    if (this.frozen) return tf.tensor4d(await this.frozen.extract(input, n), [n, H, W, D]);
    return tf.tidy(() => this.trainable!.apply(tf.tensor4d(input, [n, size, size, 3]), false));
  }

  /** The model's answer for normalised NHWC input: logits [n, C], similarities and min distances [n, m]. */
  async forward(
    input: Float32Array,
    n: number,
  ): Promise<{ logits: Float32Array; similarities: Float32Array; minDistances: Float32Array }> {
    const feats = await this.features(input, n);
    const out = this.head.forward(feats);
    feats.dispose();
    const [similarities, minDistances] = await Promise.all([out.similarities.data(), out.minDistances.data()]);
    tf.dispose([out.logits, out.similarities, out.minDistances]);
    return {
      logits: this.head.exactLogits(similarities as Float32Array, n),
      similarities: similarities as Float32Array,
      minDistances: minDistances as Float32Array,
    };
  }

  /** Normalised NHWC input (preprocess.size squared) -> distance maps [n, HW, m]. */
  async distanceMaps(input: Float32Array, n: number): Promise<Float32Array> {
    const feats = await this.features(input, n);
    const d = this.head.distanceMaps(feats);
    feats.dispose();
    const out = (await d.data()) as Float32Array;
    d.dispose();
    return out;
  }

  /** Images already resized to preprocess.size; returns one map set per image. */
  async imageDistances(
    images: RgbImage[],
    opts: { flip?: boolean; batchSize?: number } = {},
  ): Promise<ImageDistances[]> {
    const [H, W] = this.featureShape;
    const m = this.head.numPrototypes;
    const per = H * W * m;
    const out: ImageDistances[] = [];
    const batchSize = opts.batchSize ?? 32;
    for (let s = 0; s < images.length; s += batchSize) {
      const chunk = images.slice(s, s + batchSize);
      const maps = await this.distanceMaps(toNHWC(chunk, this.preprocess, opts.flip ?? false), chunk.length);
      chunk.forEach((_, k) =>
        out.push({ data: maps.slice(k * per, (k + 1) * per), height: H, width: W, prototypes: m }),
      );
    }
    return out;
  }

  /** Frees the backbone (worker threads, variables) and the head. */
  async dispose(): Promise<void> {
    await this.frozen?.dispose();
    this.trainable?.dispose();
    this.head.dispose();
  }

  /** Decode a file (optionally cropped), returning the model input and the original size. */
  /** `orient`: apply EXIF orientation (user photos); dataset images are used as stored. */
  async loadImage(
    path: string,
    box?: [number, number, number, number],
    opts: { orient?: boolean } = {},
  ): Promise<{ input: RgbImage; width: number; height: number }> {
    const full = await decodeImage(path, { box, orient: opts.orient });
    const input = await decodeImage(path, { box, size: this.preprocess.size, orient: opts.orient });
    return { input, width: full.width, height: full.height };
  }
}

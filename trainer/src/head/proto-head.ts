import * as tf from '@tensorflow/tfjs-core';
import { logitsFromSimilarities, SIMILARITY_EPSILON } from '@protoatlas/shared';
import { activation, type ActivationName } from './activations.ts';
import { logActivation } from './distances.ts';
import { linear, minSquaredDistances, nearestSquaredDistances, squaredDistancesFast } from './fast-ops.ts';
import { initLastLayer, prototypeClasses } from './last-layer.ts';
import type { HostTensors } from '../core/host-tensors.ts';
import { assignNamedWeights, readNamedWeights } from './named-weights.ts';
import type { Rng } from '../core/rng.ts';

/** Channel dropout mask [B, D] from a seeded Rng: 0 with probability `rate`, else 1/(1-rate). */
export function channelDropMask(batch: number, channels: number, rate: number, rng: Rng): Float32Array {
  const keep = 1 / (1 - rate);
  return Float32Array.from({ length: batch * channels }, () => (rng.next() < rate ? 0 : keep));
}

export interface AddOnLayerSpec {
  channels: number;
  activation: ActivationName;
}

export interface HeadSpec {
  /** Channels D of the backbone's feature map. */
  inputChannels: number;
  /** 1x1 conv layers after the backbone; the last one's channels is the prototype depth. */
  addOn: AddOnLayerSpec[];
  numClasses: number;
  prototypesPerClass: number;
  /** Wrong-class weight at initialisation (paper: -0.5). */
  incorrectClassWeight: number;
  /** Epsilon of the similarity log((d+1)/(d+eps)); absent: SIMILARITY_EPSILON (the paper's 1e-4). */
  similarityEpsilon?: number;
  /**
   * Patches a prototype's similarity averages over: its k most similar patches of the image
   * (ProtoPNeXt's top-k activation); absent or 1: the paper's single most similar patch.
   */
  similarityTopK?: number;
}

export interface HeadOutput {
  logits: tf.Tensor2D;
  /** [B, m] min squared distance over patches. */
  minDistances: tf.Tensor2D;
  /** [B, m] log similarity of the closest patch. */
  similarities: tf.Tensor2D;
  /** [B·H·W, P] patch embeddings, with `keepEmbedding`. */
  embedding?: tf.Tensor2D;
}

/**
 * The ProtoPNet head: add-on 1x1 convs (as matmuls over patches), prototype
 * layer, log similarity, last layer without bias. Owns its tf.Variables.
 */
export class ProtoHead {
  readonly spec: HeadSpec;
  readonly protoClass: Int32Array;
  readonly addOnW: tf.Variable[] = [];
  readonly addOnB: tf.Variable[] = [];
  readonly prototypes: tf.Variable;
  readonly lastLayer: tf.Variable;

  /** [m, D] backbone features of each prototype's source patch while prototypes are tied to them. */
  private tied: tf.Tensor2D | null = null;

  constructor(spec: HeadSpec, rng: Rng) {
    this.spec = spec;
    this.protoClass = prototypeClasses(spec.numClasses, spec.prototypesPerClass);
    let fanIn = spec.inputChannels;
    spec.addOn.forEach((layer, _i) => {
      // Kaiming normal (fan_out, relu) as the reference add-on layers use.
      const std = Math.sqrt(2 / layer.channels);
      const w = new Float32Array(fanIn * layer.channels).map(() => rng.normal() * std);
      this.addOnW.push(tf.variable(tf.tensor2d(w, [fanIn, layer.channels]), true));
      this.addOnB.push(tf.variable(tf.zeros([layer.channels]), true));
      fanIn = layer.channels;
    });
    const m = this.protoClass.length;
    // Uniform [0,1) like torch.rand in the paper; stages may re-initialise from patches.
    const p = new Float32Array(m * this.prototypeDim).map(() => rng.next());
    this.prototypes = tf.variable(tf.tensor2d(p, [m, this.prototypeDim]), true);
    const initial = initLastLayer(this.protoClass, spec.numClasses, 1, spec.incorrectClassWeight);
    this.lastLayer = tf.variable(tf.tensor2d(initial.data, initial.shape as [number, number]), true);
  }

  get prototypeDim(): number {
    return this.spec.addOn.length ? this.spec.addOn[this.spec.addOn.length - 1].channels : this.spec.inputChannels;
  }

  /** Epsilon of the similarity log((d+1)/(d+eps)). */
  get epsilon(): number {
    return this.spec.similarityEpsilon ?? SIMILARITY_EPSILON;
  }

  /** Patches a similarity averages over (1: the paper's max). */
  get topK(): number {
    return this.spec.similarityTopK ?? 1;
  }

  get numPrototypes(): number {
    return this.protoClass.length;
  }

  /** An upper bound of squared distances, used by Clst/Sep masking: P for sigmoid latents, 4 for unit vectors; large otherwise. */
  get maxDistance(): number {
    const last = this.spec.addOn[this.spec.addOn.length - 1]?.activation;
    if (last === 'sigmoid') return this.prototypeDim;
    if (last === 'l2norm') return 100; // prototypes need not stay unit-norm between pushes
    return 1e6;
  }

  addOnVariables(): tf.Variable[] {
    return [...this.addOnW, ...this.addOnB];
  }

  /**
   * Patch embeddings: features [B,H,W,D] -> z [B*H*W, P]. `dropMask` [B, D]
   * (0 or 1/(1-rate)) drops whole feature channels per image: cheaper than
   * element-wise dropout and a stronger regulariser for frozen features.
   */
  embed(features: tf.Tensor4D, dropMask?: Float32Array, inputGrad = false): tf.Tensor2D {
    return tf.tidy(() => {
      const [b, h, w, d] = features.shape;
      let f: tf.Tensor = features;
      if (dropMask) f = tf.mul(f, tf.tensor4d(dropMask, [b, 1, 1, d]));
      let x = tf.reshape(f, [b * h * w, d]) as tf.Tensor2D;
      this.spec.addOn.forEach((layer, i) => {
        const y = linear(x, this.addOnW[i] as tf.Tensor2D, { inputGrad: i > 0 || inputGrad });
        x = activation(layer.activation)(tf.add(y, this.addOnB[i])) as tf.Tensor2D;
      });
      return x;
    });
  }

  /**
   * Tie every prototype to its source patch: from now on prototype j is the
   * add-on embedding of that patch's backbone features, so the add-on can keep
   * training while each prototype stays exactly on a real training patch.
   */
  tieToPatches(sourceFeatures: Float32Array): void {
    this.tied?.dispose();
    this.tied = tf.keep(tf.tensor2d(sourceFeatures, [this.numPrototypes, this.spec.inputChannels]));
    this.syncTiedPrototypes();
  }

  /** Scale every prototype to unit length (free prototypes only: tied ones follow their patches). */
  normalizePrototypes(): void {
    if (this.tied) return;
    const unit = tf.tidy(() => activation('l2norm')(this.prototypes));
    this.prototypes.assign(unit as tf.Tensor2D);
    unit.dispose();
  }

  /** Undo tieToPatches: prototypes are free variables again (holding their last tied values). */
  untie(): void {
    this.tied?.dispose();
    this.tied = null;
  }

  /** The tied patches' backbone features [m * D], or null when untied. */
  tiedFeatures(): Float32Array | null {
    return this.tied ? (this.tied.dataSync() as Float32Array).slice() : null;
  }

  get isTied(): boolean {
    return this.tied !== null;
  }

  /** The prototype matrix in use: the free variable, or the embedding of the tied patches. */
  currentPrototypes(): tf.Tensor2D {
    if (!this.tied) return this.prototypes as tf.Tensor2D;
    const t = this.tied;
    return tf.tidy(() =>
      this.embed(tf.reshape(t, [this.numPrototypes, 1, 1, this.spec.inputChannels]) as tf.Tensor4D, undefined, false),
    );
  }

  /** Copy the tied prototypes into the prototype variable (for saving and export). */
  syncTiedPrototypes(): void {
    if (!this.tied) return;
    const p = this.currentPrototypes();
    this.prototypes.assign(p);
    p.dispose();
  }

  /** Squared distance of every patch to every prototype: [B, H*W, m]. */
  distanceMaps(features: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, h, w] = features.shape;
      return this.patchDistances(this.embed(features), b, h * w);
    });
  }

  /** distanceMaps from patch embeddings z [B*HW, P] already at hand (image-major). */
  patchDistances(z: tf.Tensor2D, b: number, hw: number): tf.Tensor3D {
    return tf.tidy(
      () => tf.reshape(squaredDistancesFast(z, this.currentPrototypes()), [b, hw, this.numPrototypes]) as tf.Tensor3D,
    );
  }

  /** `inputGrad`: also differentiate w.r.t. the features (a trainable backbone sits in front). */
  /** `training`: min distances from the expansion alone (no exact refinement, no host round trip). */
  /** `keepEmbedding`: also return the patch embeddings (the shallow alignment term picks patches by them). */
  forward(
    features: tf.Tensor4D,
    opts: { dropMask?: Float32Array; inputGrad?: boolean; training?: boolean; keepEmbedding?: boolean } = {},
  ): HeadOutput {
    return tf.tidy(() => {
      const [b, h, w] = features.shape;
      const z = this.embed(features, opts.dropMask, opts.inputGrad ?? false);
      const refine = !(opts.training ?? false);
      let minDistances: tf.Tensor2D;
      let similarities: tf.Tensor2D;
      if (this.topK === 1) {
        minDistances = minSquaredDistances(z, this.currentPrototypes(), b, h * w, refine);
        similarities = logActivation(minDistances, this.epsilon) as tf.Tensor2D;
      } else {
        if (this.topK > h * w)
          throw new Error(
            `head.similarityTopK is ${this.topK}, more than the ${h}x${w} = ${h * w} patches of the feature grid; set it to at most ${h * w}`,
          );
        const nearest = nearestSquaredDistances(z, this.currentPrototypes(), b, h * w, this.topK, refine);
        minDistances = tf.reshape(tf.slice(nearest, [0, 0, 0], [-1, -1, 1]), [b, this.numPrototypes]) as tf.Tensor2D;
        similarities = tf.mean(logActivation(nearest, this.epsilon), 2) as tf.Tensor2D;
      }
      const logits = linear(similarities, this.lastLayer as tf.Tensor2D, { inputGrad: true });
      return opts.keepEmbedding
        ? { logits, minDistances, similarities, embedding: z }
        : { logits, minDistances, similarities };
    });
  }

  /**
   * Evaluation logits from similarities [n, m], summed in float64 as the ONNX
   * export does: a float32 matMul of m = 2,000 terms (logits ~ -1,000 with the
   * initial -0.5 weights) is off by ~1e-3 depending on its summation order.
   */
  exactLogits(similarities: Float32Array, n: number): Float32Array {
    const m = this.numPrototypes;
    const C = this.spec.numClasses;
    const model = { lastLayer: this.lastLayer.dataSync() as Float32Array, numClasses: C };
    const out = new Float32Array(n * C);
    for (let i = 0; i < n; i++)
      out.set(logitsFromSimilarities(similarities.subarray(i * m, (i + 1) * m), model), i * C);
    return out;
  }

  /** Variables under stable names (tfjs variable names must be unique per process, so we keep our own). */
  namedVariables(): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [];
    this.addOnW.forEach((w, i) => out.push([`head.addon${i}.w`, w], [`head.addon${i}.b`, this.addOnB[i]]));
    out.push(['head.prototypes', this.prototypes], ['head.last_layer', this.lastLayer]);
    return out;
  }

  getWeights(): HostTensors {
    return readNamedWeights(this.namedVariables());
  }

  setWeights(weights: HostTensors): void {
    assignNamedWeights(this.namedVariables(), weights);
  }

  dispose(): void {
    this.tied?.dispose();
    for (const [, v] of this.namedVariables()) v.dispose();
  }
}

/**
 * The black-box head of the paper's "Baseline": global average pooling of the backbone's feature map
 * and a linear softmax layer. Trained with the backbone it is the fine-tuned black box the prototype
 * model is compared with; it goes through the same gradient threads as the prototype head.
 */
import * as tf from '@tensorflow/tfjs-core';
import { linear } from './fast-ops.ts';
import type { HostTensors } from '../core/host-tensors.ts';
import { assignNamedWeights, readNamedWeights } from './named-weights.ts';
import type { Rng } from '../core/rng.ts';

export interface PooledLinearSpec {
  kind: 'pooled-linear';
  /** Channels D of the backbone's feature map. */
  inputChannels: number;
  numClasses: number;
}

export class PooledLinearHead {
  readonly spec: PooledLinearSpec;
  /** [D, C] */
  readonly w: tf.Variable;
  /** [C] */
  readonly b: tf.Variable;

  constructor(spec: PooledLinearSpec, rng: Rng) {
    this.spec = spec;
    // Small random weights (not zeros) so that every class's row differs from the first step.
    const scale = 0.01;
    const n = spec.inputChannels * spec.numClasses;
    const w = Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
    this.w = tf.variable(tf.tensor2d(w, [spec.inputChannels, spec.numClasses]), true);
    this.b = tf.variable(tf.zeros([spec.numClasses]), true);
  }

  /**
   * Logits [B, C] of feature maps [B, H, W, D]. `dropMask` [B, D] drops whole channels, as the
   * prototype head's channel dropout does on the same maps.
   */
  forward(features: tf.Tensor4D, opts: { dropMask?: Float32Array; inputGrad?: boolean } = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const [b, , , d] = features.shape;
      let pooled = tf.mean(features, [1, 2]) as tf.Tensor2D;
      if (opts.dropMask) pooled = tf.mul(pooled, tf.tensor2d(opts.dropMask, [b, d]));
      return tf.add(linear(pooled, this.w as tf.Tensor2D, { inputGrad: opts.inputGrad ?? false }), this.b);
    });
  }

  /** Logits [n, C] of pooled features [n, D] (evaluation: no dropout). */
  pooledLogits(x: Float32Array, n: number): Float32Array {
    return tf.tidy(
      () =>
        tf
          .add(tf.matMul(tf.tensor2d(x, [n, this.spec.inputChannels]), this.w as tf.Tensor2D), this.b)
          .dataSync() as Float32Array,
    );
  }

  /** Variables under stable names (the checkpoint's keys). */
  namedVariables(): [string, tf.Variable][] {
    return [
      ['head.linear.w', this.w],
      ['head.linear.b', this.b],
    ];
  }

  getWeights(): HostTensors {
    return readNamedWeights(this.namedVariables());
  }

  setWeights(weights: HostTensors): void {
    assignNamedWeights(this.namedVariables(), weights);
  }

  /** Never tied to patches (the pool's phase message carries none). */
  tiedFeatures(): null {
    return null;
  }

  dispose(): void {
    this.w.dispose();
    this.b.dispose();
  }
}

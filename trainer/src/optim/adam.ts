import * as tf from '@tensorflow/tfjs-core';
import type { HostTensors } from '../core/host-tensors.ts';

export interface ParamGroup {
  name: string;
  lr: number;
  /** [stable name, variable] pairs; stable names key the saved state. */
  vars: [string, tf.Variable][];
  /**
   * An L1 penalty lambda * sum(|w * mask|) applied as a proximal step after each
   * update (soft-thresholding in Adam's own metric), so penalised weights reach
   * exactly 0; a gradient of |w| only makes them oscillate around it.
   */
  l1?: { lambda: number; mask: tf.Tensor };
  /** L2 weight decay added to the gradient before the moments (coupled, as torch.optim.Adam's weight_decay). */
  weightDecay?: number;
}

/**
 * Adam with per-group learning rates and state we can save and restore exactly
 * (tfjs's built-in optimizer state is not resumable bit-for-bit across runs).
 */
export class Adam {
  readonly groups: ParamGroup[];
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private steps = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(groups: ParamGroup[], opts: { beta1?: number; beta2?: number; eps?: number } = {}) {
    this.groups = groups;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    for (const g of groups) {
      for (const [name, variable] of g.vars) {
        this.m.set(name, tf.variable(tf.zerosLike(variable), false));
        this.v.set(name, tf.variable(tf.zerosLike(variable), false));
      }
    }
  }

  /** All variables this optimizer updates, for tf.variableGrads. */
  variables(): tf.Variable[] {
    return this.groups.flatMap((g) => g.vars.map(([, v]) => v));
  }

  setLearningRate(group: string, lr: number): void {
    const g = this.groups.find((x) => x.name === group);
    if (g) g.lr = lr;
  }

  /** grads keyed by tf variable name, as tf.variableGrads returns them. */
  apply(grads: tf.NamedTensorMap): void {
    this.steps++;
    const bc1 = 1 - this.beta1 ** this.steps;
    const bc2 = 1 - this.beta2 ** this.steps;
    tf.tidy(() => {
      for (const g of this.groups) {
        if (g.lr === 0) continue;
        for (const [name, variable] of g.vars) {
          const raw = grads[variable.name];
          if (!raw) continue;
          const grad = g.weightDecay ? tf.add(raw, tf.mul(variable, g.weightDecay)) : raw;
          const m = this.m.get(name)!;
          const v = this.v.get(name)!;
          m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(grad, 1 - this.beta1)));
          v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(grad), 1 - this.beta2)));
          const scale = tf.add(tf.sqrt(tf.div(v, bc2)), this.eps);
          const stepped = tf.sub(variable, tf.mul(tf.div(tf.div(m, bc1), scale), g.lr));
          variable.assign(
            // A zero penalty takes no proximal step: the update is plain Adam, as without `l1`.
            g.l1 && g.l1.lambda > 0
              ? softThreshold(stepped, tf.div(tf.mul(g.l1.mask, g.lr * g.l1.lambda), scale))
              : stepped,
          );
        }
      }
    });
  }

  getState(): { steps: number; tensors: HostTensors } {
    const tensors: HostTensors = new Map();
    for (const [name, t] of this.m)
      tensors.set(`adam.m.${name}`, { shape: t.shape.slice(), data: t.dataSync() as Float32Array });
    for (const [name, t] of this.v)
      tensors.set(`adam.v.${name}`, { shape: t.shape.slice(), data: t.dataSync() as Float32Array });
    return { steps: this.steps, tensors };
  }

  setState(state: { steps: number; tensors: HostTensors }): void {
    this.steps = state.steps;
    for (const [prefix, map] of [
      ['adam.m.', this.m],
      ['adam.v.', this.v],
    ] as const) {
      for (const [name, t] of map) {
        const saved = state.tensors.get(prefix + name);
        if (!saved) throw new Error(`optimizer state lacks "${prefix + name}"`);
        t.assign(tf.tensor(saved.data, saved.shape));
      }
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/** prox of t * |w| elementwise: sign(w) * max(|w| - t, 0). */
export function softThreshold(w: tf.Tensor, t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.sign(w), tf.relu(tf.sub(tf.abs(w), t))));
}

/** Adam (trainer/src/optim/adam.ts) against Adam written out by hand in float64, per group and learning rate. */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam } from '../../trainer/src/optim/adam.ts';

/** Kingma & Ba (2015), Algorithm 1, one parameter at a time, in float64. */
class ReferenceAdam {
  private m: number[];
  private v: number[];
  private t = 0;
  private readonly beta1 = 0.9;
  private readonly beta2 = 0.999;
  private readonly eps = 1e-8;
  constructor(size: number) {
    this.m = new Array<number>(size).fill(0);
    this.v = new Array<number>(size).fill(0);
  }
  step(theta: number[], grad: number[], lr: number): number[] {
    this.t++;
    return theta.map((p, i) => {
      this.m[i] = this.beta1 * this.m[i] + (1 - this.beta1) * grad[i];
      this.v[i] = this.beta2 * this.v[i] + (1 - this.beta2) * grad[i] * grad[i];
      const mHat = this.m[i] / (1 - this.beta1 ** this.t);
      const vHat = this.v[i] / (1 - this.beta2 ** this.t);
      return p - (lr * mHat) / (Math.sqrt(vHat) + this.eps);
    });
  }
}

const GRADS_A = [
  [0.5, -2, 1e-3],
  [0.25, 1, -1e-3],
  [-0.75, 0.5, 0],
  [1.5, -0.25, 2e-3],
];
const GRADS_B = [
  [3, -0.1],
  [-1, 0.2],
  [2, 0.05],
  [0.5, -0.3],
];

describe('Adam', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('matches hand-computed Adam per group, each group at its own learning rate, lr changed mid-way', () => {
    const a = tf.variable(tf.tensor1d([1, -1, 0.5]));
    const b = tf.variable(tf.tensor1d([0.2, 0.3]));
    const frozen = tf.variable(tf.tensor1d([7, 8]));
    const opt = new Adam([
      { name: 'addOn', lr: 1e-2, vars: [['a', a]] },
      { name: 'prototypes', lr: 3e-3, vars: [['b', b]] },
      { name: 'features', lr: 0, vars: [['frozen', frozen]] },
    ]);
    const [refA, refB] = [new ReferenceAdam(3), new ReferenceAdam(2)];
    let [pa, pb] = [
      [1, -1, 0.5],
      [0.2, 0.3],
    ];
    const lrs = [
      [1e-2, 3e-3],
      [1e-2, 3e-3],
      [1e-3, 3e-2], // a schedule changes each group's lr between steps
      [5e-4, 3e-2],
    ];
    for (let s = 0; s < 4; s++) {
      opt.setLearningRate('addOn', lrs[s][0]);
      opt.setLearningRate('prototypes', lrs[s][1]);
      const grads = {
        [a.name]: tf.tensor1d(GRADS_A[s]),
        [b.name]: tf.tensor1d(GRADS_B[s]),
        [frozen.name]: tf.tensor1d([1, 1]),
      };
      opt.apply(grads);
      pa = refA.step(pa, GRADS_A[s], lrs[s][0]);
      pb = refB.step(pb, GRADS_B[s], lrs[s][1]);
      Array.from(a.dataSync()).forEach((v, i) => expect(v, `a[${i}] step ${s + 1}`).toBeCloseTo(pa[i], 6));
      Array.from(b.dataSync()).forEach((v, i) => expect(v, `b[${i}] step ${s + 1}`).toBeCloseTo(pb[i], 6));
    }
    // A group at lr 0 is frozen: neither moved nor does it build moments.
    expect(Array.from(frozen.dataSync())).toEqual([7, 8]);
    opt.dispose();
  });

  it('first step is lr * sign(g) whatever the gradient scale (bias correction)', () => {
    const x = tf.variable(tf.tensor1d([0, 0, 0]));
    const opt = new Adam([{ name: 'g', lr: 0.1, vars: [['x', x]] }]);
    opt.apply({ [x.name]: tf.tensor1d([1e-3, -50, 2]) });
    const got = Array.from(x.dataSync());
    expect(got[0]).toBeCloseTo(-0.1, 5);
    expect(got[1]).toBeCloseTo(0.1, 6);
    expect(got[2]).toBeCloseTo(-0.1, 6);
    opt.dispose();
  });

  it("weight decay is torch's coupled L2: wd * w joins the gradient before the moments, per group", () => {
    const w = tf.variable(tf.tensor1d([2, -1, 0.5]));
    const u = tf.variable(tf.tensor1d([2, -1]));
    const opt = new Adam([
      { name: 'addOn', lr: 1e-2, vars: [['w', w]], weightDecay: 0.1 },
      { name: 'prototypes', lr: 1e-2, vars: [['u', u]] },
    ]);
    const ref = new ReferenceAdam(3);
    const refU = new ReferenceAdam(2);
    let p = [2, -1, 0.5];
    let q = [2, -1];
    for (let s = 0; s < 4; s++) {
      const g = GRADS_A[s];
      opt.apply({ [w.name]: tf.tensor1d(g), [u.name]: tf.tensor1d(GRADS_B[s]) });
      p = ref.step(
        p,
        g.map((gi, i) => gi + 0.1 * p[i]),
        1e-2,
      );
      q = refU.step(q, GRADS_B[s], 1e-2);
      Array.from(w.dataSync()).forEach((v, i) => expect(v, `w[${i}] step ${s + 1}`).toBeCloseTo(p[i], 6));
      Array.from(u.dataSync()).forEach((v, i) => expect(v, `u[${i}] step ${s + 1}`).toBeCloseTo(q[i], 6));
    }
    // With a zero gradient the decay alone moves a weight toward 0: Adam's first step is lr * sign(wd * w).
    const z = tf.variable(tf.tensor1d([3, -3]));
    const alone = new Adam([{ name: 'g', lr: 0.1, vars: [['z', z]], weightDecay: 1e-3 }]);
    alone.apply({ [z.name]: tf.tensor1d([0, 0]) });
    Array.from(z.dataSync()).forEach((v, i) => expect(v).toBeCloseTo([2.9, -2.9][i], 5));
    opt.dispose();
    alone.dispose();
  });

  it('saved state restores the same next step (moments and step count)', () => {
    const make = () => {
      const w = tf.variable(tf.tensor1d([1, 2]));
      return { w, opt: new Adam([{ name: 'g', lr: 0.05, vars: [['w', w]] }]) };
    };
    const one = make();
    one.opt.apply({ [one.w.name]: tf.tensor1d([0.3, -0.7]) });
    const state = one.opt.getState();
    const two = make();
    two.w.assign(one.w);
    two.opt.setState(state);
    one.opt.apply({ [one.w.name]: tf.tensor1d([-0.2, 0.4]) });
    two.opt.apply({ [two.w.name]: tf.tensor1d([-0.2, 0.4]) });
    expect(Array.from(two.w.dataSync())).toEqual(Array.from(one.w.dataSync()));
    const ref = new ReferenceAdam(2);
    const p = ref.step(ref.step([1, 2], [0.3, -0.7], 0.05), [-0.2, 0.4], 0.05);
    Array.from(one.w.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(p[i], 6));
    // A state missing a tensor is refused by name.
    const three = make();
    expect(() => three.opt.setState({ steps: 1, tensors: new Map() })).toThrow(/adam\.m\.w/);
  });
});

import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { logActivation, squaredDistances } from '../../trainer/src/head/distances.ts';
import {
  classGroups,
  classIdentity,
  initLastLayer,
  prototypeClasses,
  wrongClassMask,
  wrongClassSparsity,
} from '../../trainer/src/head/last-layer.ts';
import {
  clusterCost,
  crossEntropy,
  distillationLoss,
  maskedL1,
  orthogonalityCost,
  presenceCost,
  separationCost,
} from '../../trainer/src/head/losses.ts';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { gradContext, microBatchGrads } from '../../trainer/src/stages/grad-step.ts';
import { memorySource } from '../support/memory-source.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('squared L2 distances', () => {
  it('match hand-computed values', () => {
    // z1 = (0,0), z2 = (1,2); p1 = (1,0), p2 = (3,4)
    const d = squaredDistances(tf.tensor2d([0, 0, 1, 2], [2, 2]), tf.tensor2d([1, 0, 3, 4], [2, 2]));
    // |z1-p1|^2 = 1, |z1-p2|^2 = 25, |z2-p1|^2 = 4, |z2-p2|^2 = 4+4 = 8
    expect(Array.from(d.dataSync())).toEqual([1, 25, 4, 8]);
  });
  it('never go negative from round-off', () => {
    const v = [0.1234567, 0.7654321, 0.3333333];
    const d = squaredDistances(tf.tensor2d(v, [1, 3]), tf.tensor2d(v, [1, 3]));
    expect(d.dataSync()[0]).toBeGreaterThanOrEqual(0);
    expect(d.dataSync()[0]).toBeLessThan(1e-6);
  });
});

describe('log activation', () => {
  it('is log((d+1)/(d+1e-4))', () => {
    const s = logActivation(tf.tensor1d([0, 1, 9])).dataSync();
    expect(s[0]).toBeCloseTo(Math.log(1 / 1e-4), 3); // 9.2103
    expect(s[1]).toBeCloseTo(Math.log(2 / 1.0001), 5); // 0.69310
    expect(s[2]).toBeCloseTo(Math.log(10 / 9.0001), 5); // 0.10535
  });
});

describe('cluster and separation costs on a tiny batch', () => {
  // 2 classes x 2 prototypes: protos 0,1 -> class 0; 2,3 -> class 1.
  const protoClass = prototypeClasses(2, 2);
  const idT = () => {
    const id = classIdentity(protoClass, 2);
    return tf.transpose(tf.tensor2d(id.data, [4, 2]));
  };
  const minDist = () => tf.tensor2d([1, 3, 0.5, 7, /* image of class 1 */ 2, 4, 6, 5], [2, 4]);
  it('Clst = mean over images of the min distance to an own-class prototype', () => {
    const own = tf.gather(idT(), tf.tensor1d([0, 1], 'int32')) as tf.Tensor2D;
    // image 0 (class 0): min(1,3) = 1; image 1 (class 1): min(6,5) = 5 -> mean 3
    expect(clusterCost(minDist(), own, 10).dataSync()[0]).toBeCloseTo(3, 6);
  });
  it('Sep = mean over images of the min distance to another class prototype', () => {
    const own = tf.gather(idT(), tf.tensor1d([0, 1], 'int32')) as tf.Tensor2D;
    // image 0: min(0.5,7) = 0.5; image 1: min(2,4) = 2 -> mean 1.25
    expect(separationCost(minDist(), own, 10).dataSync()[0]).toBeCloseTo(1.25, 6);
  });
  it('presence = mean over images of the mean distance of every own-class prototype', () => {
    const own = tf.gather(idT(), tf.tensor1d([0, 1], 'int32')) as tf.Tensor2D;
    // image 0 (class 0): (1 + 3) / 2 = 2; image 1 (class 1): (6 + 5) / 2 = 5.5 -> mean 3.75
    expect(presenceCost(minDist(), own).dataSync()[0]).toBeCloseTo(3.75, 6);
  });
  it('cross-entropy of a tiny batch', () => {
    const logits = tf.tensor2d([2, 0, 0, 1], [2, 2]);
    const labels = tf.tensor1d([0, 1], 'int32');
    const ce = crossEntropy(logits, labels).dataSync()[0];
    // image 0: -log(e^2/(e^2+1)) = 0.126928; image 1: -log(e/(1+e)) = 0.313262
    expect(ce).toBeCloseTo((0.1269280110429725 + 0.31326168751822286) / 2, 6);
  });

  it("similarities use the spec's epsilon: log((d+1)/(d+eps)), log(1/eps) on a patch itself", () => {
    const spec = {
      inputChannels: 1,
      addOn: [],
      numClasses: 2,
      prototypesPerClass: 1,
      incorrectClassWeight: -0.5,
      similarityEpsilon: 0.1,
    };
    const head = new ProtoHead(spec, new Rng(1));
    expect(head.epsilon).toBe(0.1);
    head.prototypes.assign(tf.tensor2d([0, 2], [2, 1]));
    // One image, patches 0 and 0.5: prototype 0 sits on a patch (d = 0), prototype 1 is 1.5 away (d = 2.25).
    const out = head.forward(tf.tensor4d([0, 0.5], [1, 1, 2, 1]));
    const sims = out.similarities.dataSync();
    expect(sims[0]).toBeCloseTo(Math.log(1 / 0.1), 5);
    expect(sims[1]).toBeCloseTo(Math.log(3.25 / 2.35), 5);
    // Logits: +1 own class, -0.5 the other.
    const logits = out.logits.dataSync();
    expect(logits[0]).toBeCloseTo(sims[0] - 0.5 * sims[1], 5);
    // Without the field: the paper's 1e-4.
    const paper = new ProtoHead({ ...spec, similarityEpsilon: undefined }, new Rng(1));
    expect(paper.epsilon).toBe(1e-4);
    tf.dispose([out.logits, out.minDistances, out.similarities]);
    head.dispose();
    paper.dispose();
  });

  it('a top-k head averages the log similarities of its k closest patches; min distances stay the closest', () => {
    const spec = { inputChannels: 1, addOn: [], numClasses: 2, prototypesPerClass: 1, incorrectClassWeight: -0.5 };
    const head = new ProtoHead({ ...spec, similarityTopK: 2 }, new Rng(1));
    expect(head.topK).toBe(2);
    head.prototypes.assign(tf.tensor2d([0, 2], [2, 1]));
    // One image, patches 0, 0.5 and 3. Prototype 0: d = 0, 0.25, 9; prototype 1: d = 4, 2.25, 1.
    const out = head.forward(tf.tensor4d([0, 0.5, 3], [1, 1, 3, 1]));
    const sim = (v: number) => Math.log((v + 1) / (v + 1e-4));
    const sims = out.similarities.dataSync();
    expect(sims[0]).toBeCloseTo((sim(0) + sim(0.25)) / 2, 4);
    expect(sims[1]).toBeCloseTo((sim(1) + sim(2.25)) / 2, 5);
    expect(Array.from(out.minDistances.dataSync())).toEqual([0, 1]);
    const logits = out.logits.dataSync();
    expect(logits[1]).toBeCloseTo(sims[1] - 0.5 * sims[0], 4);
    tf.dispose([out.logits, out.minDistances, out.similarities]);
    const tooMany = new ProtoHead({ ...spec, similarityTopK: 4 }, new Rng(1));
    expect(() => tooMany.forward(tf.tensor4d([0, 0.5, 3], [1, 1, 3, 1]))).toThrow(
      /head\.similarityTopK is 4, more than the 1x3 = 3 patches of the feature grid; set it to at most 3/,
    );
    tooMany.dispose();
    // Without the field: the paper's single closest patch.
    const paper = new ProtoHead(spec, new Rng(1));
    expect(paper.topK).toBe(1);
    head.dispose();
    paper.dispose();
  });

  it("the trainer's own step computes CE + 0.8 Clst - 0.08 Sep, matching values worked by hand", () => {
    // 1-D features, no add-on: prototypes 0, 1 (class 0) and 3, 6 (class 1); one patch per image.
    const spec = { inputChannels: 1, addOn: [], numClasses: 2, prototypesPerClass: 2, incorrectClassWeight: -0.5 };
    const head = new ProtoHead(spec, new Rng(1));
    head.prototypes.assign(tf.tensor2d([0, 1, 3, 6], [4, 1]));
    const x = [0.5, 4]; // image 0 is class 0, image 1 class 1
    const source = memorySource(Float32Array.from(x), [1, 1, 1], Int32Array.from([0, 1]));
    // Distances: image 0 -> 0.25, 0.25, 6.25, 30.25; image 1 -> 16, 9, 1, 4.
    const d = [
      [0.25, 0.25, 6.25, 30.25],
      [16, 9, 1, 4],
    ];
    const sim = (v: number) => Math.log((v + 1) / (v + 1e-4));
    // Last layer as initialised: +1 own class, -0.5 the other.
    const w = [
      [1, -0.5],
      [1, -0.5],
      [-0.5, 1],
      [-0.5, 1],
    ];
    const logits = d.map((row) => [0, 1].map((c) => row.reduce((s, v, j) => s + sim(v) * w[j][c], 0)));
    const ceHand =
      (-Math.log(Math.exp(logits[0][0]) / (Math.exp(logits[0][0]) + Math.exp(logits[0][1]))) -
        Math.log(Math.exp(logits[1][1]) / (Math.exp(logits[1][0]) + Math.exp(logits[1][1])))) /
      2;
    const clstHand = (0.25 + 1) / 2; // nearest own-class prototype
    const sepHand = (6.25 + 9) / 2; // nearest other-class prototype
    const loss = { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 };
    const vars = [head.prototypes];
    const ctx = gradContext({ head, source, loss, vars, trainsFeatures: false, backboneTraining: false });
    const both = { indices: [0, 1], flipped: [false, false], labels: Int32Array.from([0, 1]), weight: 1 };
    const r = microBatchGrads(ctx, both);
    expect(r.terms[0]).toBeCloseTo(ceHand, 5);
    expect(r.terms[1]).toBeCloseTo(clstHand, 6);
    expect(r.terms[2]).toBeCloseTo(sepHand, 6);
    expect(r.terms[3]).toBe(2); // both images classified correctly
    expect(r.value).toBeCloseTo(ceHand + 0.8 * clstHand - 0.08 * sepHand, 5);
    // Half the batch carries half the weight.
    const half = microBatchGrads(ctx, { indices: [1], flipped: [false], labels: Int32Array.from([1]), weight: 0.5 });
    const ce1 = Math.log(Math.exp(logits[1][0]) + Math.exp(logits[1][1])) - logits[1][1];
    expect(half.value).toBeCloseTo(0.5 * (ce1 + 0.8 * 1 - 0.08 * 9), 5);
    // With a presence weight, every own-class prototype's distance adds: (0.25 + 0.25) / 2 and (1 + 4) / 2.
    const presenceHand = (0.25 + 2.5) / 2;
    const withPresence = gradContext({
      head,
      source,
      loss: { ...loss, presenceCost: 0.5 },
      vars,
      trainsFeatures: false,
      backboneTraining: false,
    });
    const p = microBatchGrads(withPresence, both);
    expect(p.value).toBeCloseTo(ceHand + 0.8 * clstHand - 0.08 * sepHand + 0.5 * presenceHand, 5);
    // Its gradient pulls prototype 1 (distance 0.25 from image 0's 0.5) towards 0.5: d/dp of 0.5·(p - 0.5)²/4.
    const g = p.grads[0].dataSync();
    const g0 = r.grads[0].dataSync();
    expect(g[1] - g0[1]).toBeCloseTo((0.5 * 2 * (1 - 0.5)) / 4, 5);
    tf.dispose([...r.grads, ...half.grads, ...p.grads]);
    head.dispose();
  });
});

describe('orthogonality', () => {
  // Class 0: prototypes 0 and 2; class 1: prototypes 1 and 3 (not class-major, as after a reorder).
  const groups = () => tf.tensor2d([0, 2, 1, 3], [2, 2], 'int32');
  it('sums |cos| over ordered pairs of distinct prototypes of a class, worked by hand', () => {
    // Class 0: (1, 0) and (1, 1): cos 1/sqrt(2), counted twice. Class 1: (0, 2) and (3, 0): cos 0.
    const p = tf.tensor2d([1, 0, 0, 2, 1, 1, 3, 0], [4, 2]);
    expect(orthogonalityCost(p, groups()).dataSync()[0]).toBeCloseTo(Math.SQRT2, 6);
    // Length does not matter, and opposite prototypes count as parallel: (-2, 0) against (1, 0) gives 2 |−1|.
    const q = tf.tensor2d([1, 0, 0, 1, -2, 0, 5, 0], [4, 2]);
    expect(orthogonalityCost(q, groups()).dataSync()[0]).toBeCloseTo(2 + 0, 6);
    // Prototypes of different classes may be parallel at no cost.
    const r = tf.tensor2d([1, 0, 1, 0, 0, 1, 0, 1], [4, 2]);
    expect(orthogonalityCost(r, groups()).dataSync()[0]).toBeCloseTo(0, 6);
  });
  it('its gradient turns a class-mate away: d/dy of 2 cos at (1, 0), (1, y) is -2y / (1 + y^2)^1.5', () => {
    const p = tf.variable(tf.tensor2d([1, 0, 0, 1, 1, 1, 0, -1], [4, 2]));
    const g = tf
      .grad((x: tf.Tensor) => orthogonalityCost(x as tf.Tensor2D, groups()))(p)
      .dataSync();
    // At y = 1 (prototype 2's second coordinate): -2 / 2^1.5; raising y lowers the cost.
    expect(g[5]).toBeCloseTo(-2 / 2 ** 1.5, 5);
  });
  it('groups prototypes by class and refuses uneven classes, naming the option', () => {
    expect([...classGroups(Int32Array.from([1, 0, 1, 0]), 2, 'x').indices]).toEqual([1, 3, 0, 2]);
    expect(classGroups(Int32Array.from([1, 0, 1, 0]), 2, 'x').perClass).toBe(2);
    expect(() => classGroups(Int32Array.from([0, 0, 1]), 2, 'loss.orthogonality')).toThrow(
      /loss.orthogonality needs the same number of prototypes in every class: class 0 has 2, class 1 has 1/,
    );
  });
  it("adds its weighted value to the trainer's step, once per batch, while the prototypes are free", () => {
    const spec = { inputChannels: 1, addOn: [], numClasses: 2, prototypesPerClass: 2, incorrectClassWeight: -0.5 };
    const head = new ProtoHead(spec, new Rng(1));
    // 1-D prototypes: class 0 holds 1 and -2 (|cos| 1), class 1 holds 3 and 6 (|cos| 1): cost 2 * 2 = 4.
    head.prototypes.assign(tf.tensor2d([1, -2, 3, 6], [4, 1]));
    const source = memorySource(Float32Array.from([0.5, 4]), [1, 1, 1], Int32Array.from([0, 1]));
    const base = { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 };
    const args = { head, source, vars: [head.prototypes], trainsFeatures: false, backboneTraining: false };
    const batch = { indices: [0, 1], flipped: [false, false], labels: Int32Array.from([0, 1]) };
    const without = microBatchGrads(gradContext({ ...args, loss: base }), { ...batch, weight: 1 });
    const withCtx = gradContext({ ...args, loss: { ...base, orthogonality: 0.25 } });
    expect(microBatchGrads(withCtx, { ...batch, weight: 1 }).value - without.value).toBeCloseTo(0.25 * 4, 5);
    const halves =
      microBatchGrads(withCtx, { ...batch, indices: [0], labels: Int32Array.from([0]), weight: 0.5 }).value +
      microBatchGrads(withCtx, { ...batch, indices: [1], labels: Int32Array.from([1]), weight: 0.5 }).value;
    expect(halves).toBeCloseTo(microBatchGrads(withCtx, { ...batch, weight: 1 }).value, 5);
    // Tied to patches, the prototypes are real patches: the term leaves them alone.
    head.tieToPatches(Float32Array.from([1, -2, 3, 6]));
    const tiedArgs = { ...args, vars: [head.lastLayer] }; // tied prototypes are no variable
    const tiedWithout = microBatchGrads(gradContext({ ...tiedArgs, loss: base }), { ...batch, weight: 1 }).value;
    const tiedWith = gradContext({ ...tiedArgs, loss: { ...base, orthogonality: 0.25 } });
    expect(microBatchGrads(tiedWith, { ...batch, weight: 1 }).value).toBe(tiedWithout);
    head.dispose();
  });
});

describe('distillation', () => {
  it('is T^2 KL(teacher || softmax(logits / T)), worked by hand', () => {
    // softmax([2, 0] / 2) = [0.731059, 0.268941]; KL([.5, .5] || q) = 0.120115; times 4.
    const a = distillationLoss(tf.tensor2d([[2, 0]]), tf.tensor2d([[0.5, 0.5]]), 2);
    expect(a.dataSync()[0]).toBeCloseTo(0.480458, 5);
    // A teacher's zero probability adds nothing: softmax([0, 3, -3] / 3) against [0.2, 0.8, 0], times 9.
    const b = distillationLoss(tf.tensor2d([[0, 3, -3]]), tf.tensor2d([[0.2, 0.8, 0]]), 3);
    expect(b.dataSync()[0]).toBeCloseTo(0.964832, 5);
    // The batch mean of the two rows' terms at one temperature.
    const both = distillationLoss(
      tf.tensor2d([
        [2, 0],
        [0, 2],
      ]),
      tf.tensor2d([
        [0.5, 0.5],
        [0.5, 0.5],
      ]),
      2,
    );
    expect(both.dataSync()[0]).toBeCloseTo(0.480458, 5);
  });

  it('is 0 when the softened prediction is the teacher, and its gradient is T (q - p)', () => {
    const logits = tf.tensor2d([[1.5, -0.5, 0.25]]);
    const same = tf.softmax(tf.div(logits, 4)) as tf.Tensor2D;
    expect(distillationLoss(logits, same, 4).dataSync()[0]).toBeCloseTo(0, 5);
    const g = tf.grad((x: tf.Tensor) => distillationLoss(x as tf.Tensor2D, tf.tensor2d([[0.5, 0.5]]), 2));
    const dx = g(tf.tensor2d([[2, 0]])).dataSync();
    expect(dx[0]).toBeCloseTo(2 * (0.731059 - 0.5), 5);
    expect(dx[1]).toBeCloseTo(2 * (0.268941 - 0.5), 5);
  });
});

describe('last layer', () => {
  it('initialises +1 own class, -0.5 others', () => {
    const w = initLastLayer(prototypeClasses(3, 2), 3);
    expect(w.shape).toEqual([6, 3]);
    expect(Array.from(w.data)).toEqual([
      1, -0.5, -0.5, 1, -0.5, -0.5, -0.5, 1, -0.5, -0.5, 1, -0.5, -0.5, -0.5, 1, -0.5, -0.5, 1,
    ]);
  });
  it('L1 mask covers exactly the wrong-class connections', () => {
    const pc = prototypeClasses(2, 1);
    const mask = wrongClassMask(pc, 2);
    expect(Array.from(mask.data)).toEqual([0, 1, 1, 0]);
    const w = tf.tensor2d([3, -2, 0.5, 7], [2, 2]);
    // |-2| + |0.5| = 2.5, own-class weights 3 and 7 excluded
    expect(maskedL1(w, tf.tensor2d(mask.data, [2, 2])).dataSync()[0]).toBeCloseTo(2.5, 6);
    expect(wrongClassSparsity({ shape: [2, 2], data: new Float32Array([3, 0.0001, 0.5, 7]) }, pc)).toBe(0.5);
  });
});

describe('ProtoHead forward', () => {
  it('computes logits = log-similarity of the closest patch times the last layer', () => {
    const head = new ProtoHead(
      { inputChannels: 2, addOn: [], numClasses: 2, prototypesPerClass: 1, incorrectClassWeight: -0.5 },
      new Rng(1),
    );
    head.prototypes.assign(tf.tensor2d([0, 0, 1, 1], [2, 2]));
    // one image, 1x2 grid: patches (0,0.5) and (1,1)
    const feats = tf.tensor4d([0, 0.5, 1, 1], [1, 1, 2, 2]);
    const out = head.forward(feats);
    // proto0: min(0.25, 2) = 0.25; proto1: min(1.25, 0) = 0
    expect(Array.from(out.minDistances.dataSync())).toEqual([0.25, 0]);
    const s0 = Math.log(1.25 / 0.2501);
    const s1 = Math.log(1 / 1e-4);
    const logits = out.logits.dataSync();
    expect(logits[0]).toBeCloseTo(s0 - 0.5 * s1, 4);
    expect(logits[1]).toBeCloseTo(-0.5 * s0 + s1, 4);
  });
});

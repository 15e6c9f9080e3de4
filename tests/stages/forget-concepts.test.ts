import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { logSimilarity } from '@protoatlas/shared';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import {
  conceptGrads,
  forgetConcepts,
  forgettingLoss,
  patchSimilarities,
  rememberingLoss,
} from '../../trainer/src/stages/forget-concepts.ts';
import { pushPrototypes } from '../../trainer/src/stages/push.ts';
import { cachedSource } from '../../trainer/src/stages/sources.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** No add-on layers: a patch's embedding is its feature vector, so distances are plain. */
function plainHead(prototypes: number[][]): ProtoHead {
  const head = new ProtoHead(
    {
      inputChannels: 2,
      addOn: [],
      numClasses: 2,
      prototypesPerClass: prototypes.length / 2,
      incorrectClassWeight: -0.5,
    },
    new Rng(1),
  );
  head.prototypes.assign(tf.tensor2d(prototypes.flat(), [prototypes.length, 2]));
  return head;
}

const d2 = (a: number[], b: number[]) => (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2;

describe('concept terms (ProtoPDebug)', () => {
  const protos = [
    [0, 0],
    [1, 0],
    [3, 3],
    [0, 2],
  ]; // classes 0, 0, 1, 1
  const patches = [
    [0, 0],
    [3, 2],
  ];
  const concept = { n: 2, features: Float32Array.from(patches.flat()), classes: Int32Array.from([1, 0]) };

  it('forgetting = mean similarity over (patch, live prototype) pairs', () => {
    const head = plainHead(protos);
    const sim = (f: number[], ps: number[][]) => ps.reduce((s, p) => s + logSimilarity(d2(f, p)), 0);
    const expected = (sim(patches[0], protos) + sim(patches[1], protos)) / (2 * 4);
    expect(forgettingLoss(head, concept).dataSync()[0]).toBeCloseTo(expected, 4);
    // A dropped prototype (here the one on the first patch) no longer counts, in the sum or in the count.
    const live = tf.tensor1d([0, 1, 1, 1]);
    const rest = protos.slice(1);
    const without = (sim(patches[0], rest) + sim(patches[1], rest)) / (2 * 3);
    expect(forgettingLoss(head, concept, live).dataSync()[0]).toBeCloseTo(without, 4);
    expect(without).toBeLessThan(expected / 2); // the dropped prototype carried most of it
  });

  it('forgetting does not depend on the number of prototypes: duplicating every prototype leaves it unchanged', () => {
    const once = forgettingLoss(plainHead(protos), concept).dataSync()[0];
    const twice = plainHead([...protos, ...protos]);
    expect(twice.numPrototypes).toBe(8);
    expect(forgettingLoss(twice, concept).dataSync()[0]).toBeCloseTo(once, 5);
    // The same with a live mask: dropping both copies of prototype 0 equals dropping it once.
    const live = forgettingLoss(plainHead(protos), concept, tf.tensor1d([0, 1, 1, 1])).dataSync()[0];
    const live2 = tf.tensor1d([0, 1, 1, 1, 0, 1, 1, 1]);
    expect(forgettingLoss(twice, concept, live2).dataSync()[0]).toBeCloseTo(live, 5);
  });

  it('remembering = mean over patches of the summed similarity to the prototypes of the patch class', () => {
    const head = plainHead(protos);
    // Patch 0 is class 1 (prototypes 2, 3); patch 1 is class 0 (prototypes 0, 1).
    const expected =
      (logSimilarity(d2(patches[0], protos[2])) +
        logSimilarity(d2(patches[0], protos[3])) +
        logSimilarity(d2(patches[1], protos[0])) +
        logSimilarity(d2(patches[1], protos[1]))) /
      2;
    expect(rememberingLoss(head, concept).dataSync()[0]).toBeCloseTo(expected, 4);
  });

  it('chunks of patches add up to the whole terms, their gradients and their similarities', () => {
    const head = plainHead(protos);
    const three = { n: 3, features: Float32Array.from([0, 0, 3, 2, 1, 1]), classes: Int32Array.from([1, 0, 0]) };
    const live = tf.tensor1d([1, 0, 1, 1]);
    const whole = forgettingLoss(head, three, live).dataSync()[0];
    const shares = [
      [0, 1],
      [1, 3],
    ].map(([a, b]) => forgettingLoss(head, three, live, [a, b]).dataSync()[0]);
    expect(shares[0] + shares[1]).toBeCloseTo(whole, 6);
    const kept = [0, 2].map((a) => rememberingLoss(head, three, live, [a, Math.min(3, a + 2)]).dataSync()[0]);
    expect(kept[0] + kept[1]).toBeCloseTo(rememberingLoss(head, three, live).dataSync()[0], 6);

    const vars = [head.prototypes];
    const weights = { forget: 1.5, remember: 0.5 };
    const one = conceptGrads(head, { forbidden: three, keep: three }, live, weights, vars, 1);
    const all = conceptGrads(head, { forbidden: three, keep: three }, live, weights, vars, 3);
    expect(one.terms[0]).toBeCloseTo(whole, 6);
    expect(one.terms[0]).toBeCloseTo(all.terms[0], 6);
    expect(one.terms[1]).toBeCloseTo(all.terms[1], 6);
    const [g1, g3] = [one.grads[0].dataSync(), all.grads[0].dataSync()];
    expect(Math.max(...g3.map(Math.abs))).toBeGreaterThan(0.01);
    g3.forEach((v, i) => expect(g1[i]).toBeCloseTo(v, 5));
    // The similarities of each patch to each prototype, as logSimilarity of the squared distances.
    const sims = patchSimilarities(head, three).arraySync();
    expect(sims[2][0]).toBeCloseTo(logSimilarity(2), 5);
    expect(sims[1][2]).toBeCloseTo(logSimilarity(1), 5);
    tf.dispose([live, ...one.grads, ...all.grads]);
  });

  it('the forgetting term moves a prototype off a forbidden patch, and push then avoids the patch', async () => {
    // One image per class, two patches each; prototype 0 sits exactly on image 0's first patch.
    const maps = [
      [0, 0, 1, 1],
      [3, 3, 3.2, 3.1],
    ];
    const src = cachedSource(
      { n: 2, shape: [1, 2, 2], batch: (idx: number[]) => Float32Array.from(idx.flatMap((i) => maps[i])) },
      null,
      Int32Array.from([0, 1]),
    );
    const head = plainHead([
      [0, 0],
      [3, 3],
    ]);
    const forbidden = { n: 1, features: Float32Array.from([0, 0]), classes: Int32Array.from([0]) };
    const before = forgettingLoss(head, forbidden).dataSync()[0];
    expect(before).toBeCloseTo((logSimilarity(0) + logSimilarity(18)) / 2, 4);
    const log = await forgetConcepts({
      head,
      train: src,
      loss: { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 },
      forbidden,
      keep: null,
      removed: [false, false],
      // λf 2 on a mean over 2 prototypes: the gradient a summed term with λf 1 gives.
      options: { steps: 40, batchSize: 2, lr: { addOn: 0, prototypes: 0.05 }, forget: 2, remember: 0 },
      rng: new Rng(2),
      quiet: true,
    });
    expect(log.reduce((a, e) => a + e.steps, 0)).toBe(40);
    const p0 = Array.from(head.prototypes.dataSync()).slice(0, 2);
    expect(d2(p0, [0, 0])).toBeGreaterThan(0.5);
    expect(forgettingLoss(head, forbidden).dataSync()[0]).toBeLessThan(before - 2.5);
    // Re-push with the forbidden patch excluded: prototype 0 lands on the other patch of its class's image.
    const rec = await pushPrototypes(head, src, { quiet: true, exclude: new Map([[0, new Set([0])]]) });
    expect(rec[0]).toMatchObject({ item: 0, row: 0, col: 1 });
  });
});

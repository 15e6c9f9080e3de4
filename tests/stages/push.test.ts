import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { pushPrototypes } from '../../trainer/src/stages/push.ts';
import { cachedSource } from '../../trainer/src/stages/sources.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A store of 1x2-patch feature maps with 2 channels. */
function store(maps: number[][]) {
  return {
    n: maps.length,
    shape: [1, 2, 2] as [number, number, number],
    batch: (idx: number[]) => Float32Array.from(idx.flatMap((i) => maps[i])),
  };
}

describe('push', () => {
  it('moves each prototype onto the nearest patch of an image of its own class', async () => {
    const head = new ProtoHead(
      { inputChannels: 2, addOn: [], numClasses: 2, prototypesPerClass: 1, incorrectClassWeight: -0.5 },
      new Rng(3),
    );
    head.prototypes.assign(tf.tensor2d([0, 0, 5, 5], [2, 2]));
    // image 0 (class 0): patches (0.1,0.1) and (4.9,5); image 1 (class 1): (1,1), (3,3); image 2 (class 0): (0.2,0)
    const src = cachedSource(
      store([
        [0.1, 0.1, 4.9, 5],
        [1, 1, 3, 3],
        [0.2, 0, 9, 9],
      ]),
      null,
      Int32Array.from([0, 1, 0]),
    );
    const rec = await pushPrototypes(head, src, { quiet: true, batchSize: 2 });
    // Prototype 0 (class 0): nearest own-class patch is image 0 col 0 (d = 0.02).
    expect(rec[0]).toMatchObject({ prototype: 0, classIndex: 0, item: 0, row: 0, col: 0 });
    expect(rec[0].distance).toBeCloseTo(0.02, 5);
    // Prototype 1 (class 1) is nearest to image 0's (4.9,5) overall, but that is class 0: it must pick image 1 col 1 (3,3).
    expect(rec[1]).toMatchObject({ prototype: 1, classIndex: 1, item: 1, row: 0, col: 1 });
    expect(rec[1].distance).toBeCloseTo(8, 5);
    expect(Array.from(head.prototypes.dataSync())).toEqual([expect.closeTo(0.1, 6), expect.closeTo(0.1, 6), 3, 3]);
  });
});

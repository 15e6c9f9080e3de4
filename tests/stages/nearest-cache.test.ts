import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../trainer/src/core/rng.ts';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import {
  cachedNearestPatches,
  decodeNearest,
  encodeNearest,
  trainNearestKey,
} from '../../trainer/src/stages/nearest-cache.ts';
import { nearestPatches, type PatchHit, sourceImageExclusions } from '../../trainer/src/stages/nearest-patches.ts';
import { embeddingDigest } from '../../trainer/src/stages/similarity-cache.ts';
import { memorySource } from '../support/memory-source.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Each prototype's source image left out, as prune and the bundle search. */
const exclusions = (push: { item: number }[]) => sourceImageExclusions(push.map((r) => r.item));

function fixture() {
  const rng = new Rng(5);
  const [n, H, W, D] = [9, 2, 2, 3];
  const source = memorySource(
    Float32Array.from({ length: n * H * W * D }, () => rng.next()),
    [H, W, D],
    Int32Array.from({ length: n }, (_, i) => i % 3),
  );
  const head = new ProtoHead(
    { inputChannels: D, addOn: [], numClasses: 3, prototypesPerClass: 2, incorrectClassWeight: -0.5 },
    new Rng(2),
  );
  const push = Array.from({ length: 6 }, (_, j) => ({
    prototype: j,
    classIndex: j >> 1,
    item: j === 5 ? -1 : j,
    row: 0,
    col: 0,
    distance: 0,
  }));
  const data = {
    itemsBySplit: { train: Array.from({ length: n }, (_, i) => ({ id: `img${i}` })) },
    trainableBackbone: null,
  };
  return { source, head, push, data };
}

describe('nearest-patch cache', () => {
  it('round-trips a search, maps included', () => {
    const { source, head, push } = fixture();
    const hits = nearestPatches(head, source, 4, { exclude: exclusions(push), quiet: true });
    const back = decodeNearest(encodeNearest(hits, 4))!;
    expect(back.k).toBe(4);
    expect(back.hits).toEqual(hits);
    expect(decodeNearest(encodeNearest(hits, 4).subarray(0, 50))).toBeNull();
  });

  it('answers a smaller k from a stored larger search, exactly as a direct search of that k', async () => {
    const { source, head, push, data } = fixture();
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-nearest-'));
    const exclude = exclusions(push);
    const key = trainNearestKey(embeddingDigest(head, null), { backbone: { kind: 'x' } }, data, exclude);
    let searches = 0;
    const compute = (k: number): PatchHit[][] => {
      searches++;
      return nearestPatches(head, source, k, { exclude, quiet: true });
    };
    const six = await cachedNearestPatches({ dir, key, k: 6, compute });
    expect(six.cached).toBe(false);
    const five = await cachedNearestPatches({ dir, key, k: 5, compute });
    expect(five.cached).toBe(true);
    expect(searches).toBe(1);
    expect(five.hits).toEqual(nearestPatches(head, source, 5, { exclude, quiet: true }));
    // A source image never counts among its prototype's neighbours.
    expect(five.hits[0].some((h) => h.item === 0)).toBe(false);
    // More neighbours than stored: searched again, and stored for next time.
    expect((await cachedNearestPatches({ dir, key, k: 8, compute })).cached).toBe(false);
    expect(searches).toBe(2);
    expect(await readdir(dir)).toEqual([`nearest-${key}.bin`]);
    // A damaged file is searched again, not trusted.
    await writeFile(join(dir, `nearest-${key}.bin`), 'not a search');
    expect((await cachedNearestPatches({ dir, key, k: 5, compute })).cached).toBe(false);
  });

  it('keys the head, the items and the left-out patches', () => {
    const { head, push, data } = fixture();
    const config = { backbone: { kind: 'x' } };
    const keyOf = (d: typeof data, ex: ReturnType<typeof exclusions>) =>
      trainNearestKey(embeddingDigest(head, null), config, d, ex);
    const key = keyOf(data, exclusions(push));
    expect(keyOf(data, exclusions(push))).toBe(key);
    expect(keyOf(data, exclusions(push.slice(1)))).not.toBe(key);
    const fewer = { ...data, itemsBySplit: { train: data.itemsBySplit.train.slice(1) } };
    expect(keyOf(fewer, exclusions(push))).not.toBe(key);
    // The last layer is not part of the search.
    head.lastLayer.assign(tf.zerosLike(head.lastLayer));
    expect(keyOf(data, exclusions(push))).toBe(key);
    head.prototypes.assign(tf.onesLike(head.prototypes));
    expect(keyOf(data, exclusions(push))).not.toBe(key);
    // So is the similarity's epsilon, with the same weights.
    const flatter = new ProtoHead({ ...head.spec, similarityEpsilon: 0.1 }, new Rng(0));
    flatter.setWeights(head.getWeights());
    expect(embeddingDigest(flatter, null)).not.toBe(embeddingDigest(head, null));
    const same = new ProtoHead({ ...head.spec }, new Rng(0));
    same.setWeights(head.getWeights());
    expect(embeddingDigest(same, null)).toBe(embeddingDigest(head, null));
    // And the patches a similarity averages over; k = 1 written out keys as the field left out.
    const topK = (k: number) => {
      const h = new ProtoHead({ ...head.spec, similarityTopK: k }, new Rng(0));
      h.setWeights(head.getWeights());
      const digest = embeddingDigest(h, null);
      h.dispose();
      return digest;
    };
    expect(topK(3)).not.toBe(embeddingDigest(head, null));
    expect(topK(1)).toBe(embeddingDigest(head, null));
    flatter.dispose();
    same.dispose();
    // A tuned backbone's weights are part of the embedding.
    const tuned = new Map([['conv0.kernel', { shape: [1], data: new Float32Array([0.5]) }]]);
    expect(trainNearestKey(embeddingDigest(head, tuned), config, data, exclusions(push))).not.toBe(
      keyOf(data, exclusions(push)),
    );
  });
});

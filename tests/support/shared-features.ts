/**
 * Fixtures of the gradient-thread tests over cached features: random 3x3x6 feature maps in shared
 * memory, and the small prototype head they train.
 */
import type { FeatureEncoding } from '../../trainer/src/backbone/feature-store.ts';
import { createFeatureStore } from '../../trainer/src/backbone/feature-store.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import type { SharedStore } from '../../trainer/src/stages/sources.ts';

export const TINY_MAP: [number, number, number] = [3, 3, 6];

/** Each call makes one store of `n` maps, values uniform in [0, 2), all calls drawing from one stream. */
export function randomStores(n: number, encoding: Exclude<FeatureEncoding, 'uint8'>, seed: number): () => SharedStore {
  const rng = new Rng(seed);
  const size = TINY_MAP[0] * TINY_MAP[1] * TINY_MAP[2];
  return () => {
    const s = createFeatureStore({ n, shape: TINY_MAP, encoding });
    for (let i = 0; i < n; i++)
      s.set(
        i,
        Float32Array.from({ length: size }, () => rng.next() * 2),
      );
    return { spec: { n, shape: TINY_MAP, encoding }, data: s.data };
  };
}

/** The head over those maps: 6 → 5 → 4 channels, 3 classes × 2 prototypes, the same start for every caller. */
export function tinyHead(): ProtoHead {
  return new ProtoHead(
    {
      inputChannels: 6,
      addOn: [
        { channels: 5, activation: 'relu' },
        { channels: 4, activation: 'l2norm' },
      ],
      numClasses: 3,
      prototypesPerClass: 2,
      incorrectClassWeight: -0.5,
    },
    new Rng(1),
  );
}

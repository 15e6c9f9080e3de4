/**
 * How strongly a model still matches a concept: for each concept patch, the
 * highest similarity any live prototype reaches on it, beside a reference level
 * (over validation images, the best live-prototype similarity on each image:
 * its median, what the model typically "recognises" in a photo, and its minimum).
 */
import type { ProtoHead } from '../head/proto-head.ts';
import { patchSimilarities, type ConceptPatches } from '../stages/forget-concepts.ts';
import { computeSimilarities } from '../stages/last-layer.ts';
import type { FeatureSource } from '../stages/sources.ts';

export interface ConceptMatch {
  /** Per patch: max similarity over live prototypes. */
  perPatch: number[];
  /** Median over images of the source of the best live-prototype similarity on the image. */
  typical: number;
  /** The lowest of those: the weakest best match the model makes on any image. */
  weakest: number;
}

const liveMax = (row: ArrayLike<number>, removed: ArrayLike<boolean>) => {
  let best = -Infinity;
  for (let j = 0; j < row.length; j++) if (!removed[j] && row[j] > best) best = row[j];
  return best;
};

/** Per patch, the highest similarity any live prototype reaches on it. */
export function conceptBestMatch(head: ProtoHead, removed: ArrayLike<boolean>, patches: ConceptPatches): number[] {
  const m = head.numPrototypes;
  const t = patchSimilarities(head, patches);
  const sims = t.dataSync() as Float32Array;
  t.dispose();
  return Array.from({ length: patches.n }, (_, i) => liveMax(sims.subarray(i * m, (i + 1) * m), removed));
}

export async function conceptMatch(
  head: ProtoHead,
  removed: ArrayLike<boolean>,
  patches: ConceptPatches,
  images: FeatureSource,
): Promise<ConceptMatch> {
  const m = head.numPrototypes;
  const perPatch = conceptBestMatch(head, removed, patches);
  const all = await computeSimilarities(head, images, { flip: false, quiet: true });
  const best = Array.from({ length: all.n }, (_, i) => liveMax(all.sims.subarray(i * m, (i + 1) * m), removed)).sort(
    (a, b) => a - b,
  );
  return {
    perPatch,
    typical: best.length ? best[Math.floor(best.length / 2)] : NaN,
    weakest: best.length ? best[0] : NaN,
  };
}

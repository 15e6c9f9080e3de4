import type { PatchHit } from './nearest-patches.ts';

export interface PruneDecision {
  prototype: number;
  classId: number;
  /** How many of the k nearest training patches come from the prototype's class. */
  ownClass: number;
  k: number;
  reason: string;
}

/**
 * The paper's pruning rule (Sec. 2.5): a prototype whose k nearest training
 * patches hold fewer than `threshold` of its own class is not class-specific.
 */
export function prototypesToPrune(
  hits: PatchHit[][],
  protoClass: ArrayLike<number>,
  labels: ArrayLike<number>,
  classNames: string[],
  opts: { k: number; threshold: number },
): PruneDecision[] {
  const out: PruneDecision[] = [];
  hits.forEach((list, j) => {
    const top = list.slice(0, opts.k);
    if (top.length < opts.k) return; // too few training images to judge
    const own = top.filter((h) => labels[h.item] === protoClass[j]).length;
    if (own < opts.threshold) {
      const others = new Map<number, number>();
      for (const h of top)
        if (labels[h.item] !== protoClass[j]) others.set(labels[h.item], (others.get(labels[h.item]) ?? 0) + 1);
      const main = [...others.entries()].sort((a, b) => b[1] - a[1])[0];
      out.push({
        prototype: j,
        classId: protoClass[j],
        ownClass: own,
        k: opts.k,
        reason: `${own} of its ${opts.k} nearest training patches are ${classNames[protoClass[j]] ?? `class ${protoClass[j]}`} (needs ${opts.threshold})${main ? `; ${main[1]} are ${classNames[main[0]] ?? `class ${main[0]}`}` : ''}`,
      });
    }
  });
  return out;
}

/** Similarities with pruned prototypes zeroed: their last-layer rows then get no gradient and stay 0. */
export function maskSimilarities(sims: Float32Array, m: number, pruned: ArrayLike<boolean>): Float32Array {
  const out = sims.slice();
  const n = out.length / m;
  for (let j = 0; j < m; j++) {
    if (!pruned[j]) continue;
    for (let i = 0; i < n; i++) out[i * m + j] = 0;
  }
  return out;
}

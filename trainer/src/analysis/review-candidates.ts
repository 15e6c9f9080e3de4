/**
 * Candidate finder for prototype debugging: prototypes a person may want to
 * drop or forbid, each with the reason in words. Background (the region covers
 * no annotated part, or sits on the image border), near-duplicates (embeddings
 * and nearest patches nearly coincide) and impure (nearest patches mostly from
 * other classes). Flags are suggestions shown in the atlas; nothing is removed.
 */
import type { ReviewKind } from '@protoatlas/shared';

export interface ReviewFlag {
  kind: ReviewKind;
  reason: string;
}

export interface CellRef {
  imageId: string;
  row: number;
  col: number;
}

export interface CandidatePrototype {
  classId: number;
  pruned: boolean;
  /** Share of nearest training patches from its class (null: none recorded). */
  purity: number | null;
  source: CellRef | null;
  nearest: (CellRef & { classId: number })[];
  /** Share of its class's part-annotated images where its region covers no part (null: not evaluated). */
  noPart: number | null;
  /** Synthetic data: the largest share of its source box inside one bird part's box; undefined: not judged. */
  birdShare?: number;
}

/** Thresholds of the rules; documented in docs/debugging.md. */
export const REVIEW_RULES = {
  /** Background: region covers no annotated part on at least this share of images. */
  noPart: 0.5,
  /** Background (synthetic birds): less than this share of its source box lies on the bird. */
  birdShare: 0.25,
  /** Background: at least this share of its patches (source + nearest) on the grid's outer ring. */
  border: 0.8,
  /** Impure: purity below this. */
  purity: 0.5,
  /** Duplicate: squared embedding distance below this share of the median nearest-prototype distance... */
  duplicateDistance: 0.25,
  /** ...and at least this share of nearest training images in common. */
  duplicateShared: 0.5,
};

/**
 * Flags per prototype (empty list: nothing stands out). `vectors` are the
 * prototype embeddings [m, dim]; `grid` the feature grid; `classNames` for reasons.
 */
export function reviewCandidates(
  protos: CandidatePrototype[],
  vectors: Float32Array,
  dim: number,
  grid: { height: number; width: number },
  classNames: string[],
  rules = REVIEW_RULES,
): ReviewFlag[][] {
  const m = protos.length;
  const flags: ReviewFlag[][] = Array.from({ length: m }, () => []);
  const name = (c: number) => classNames[c] ?? `class ${c}`;
  const onBorder = (c: CellRef) =>
    grid.height > 2 &&
    grid.width > 2 &&
    (c.row === 0 || c.col === 0 || c.row === grid.height - 1 || c.col === grid.width - 1);
  const pct = (x: number) => `${Math.round(100 * x)}%`;
  const short = (x: number) => String(Number(x.toPrecision(2)));

  protos.forEach((p, j) => {
    if (p.pruned) return;
    if (p.noPart !== null && p.noPart >= rules.noPart) {
      flags[j].push({
        kind: 'background',
        reason: `its region covers no annotated bird part on ${pct(p.noPart)} of ${name(p.classId)}'s validation images`,
      });
    } else if (p.birdShare !== undefined && p.birdShare < rules.birdShare) {
      flags[j].push({
        kind: 'background',
        reason: `only ${pct(p.birdShare)} of its box on the source image lies on the bird`,
      });
    }
    const cells = [...(p.source ? [p.source] : []), ...p.nearest];
    const border = cells.filter(onBorder).length;
    if (cells.length >= 3 && border / cells.length >= rules.border) {
      flags[j].push({
        kind: 'background',
        reason:
          `activates on the image border: ${border} of its ${cells.length} patches lie on the outer ring of ` +
          `the ${grid.height}×${grid.width} grid`,
      });
    }
    if (p.purity !== null && p.purity < rules.purity && p.nearest.length) {
      const own = p.nearest.filter((n) => n.classId === p.classId).length;
      const others = new Map<number, number>();
      for (const n of p.nearest) if (n.classId !== p.classId) others.set(n.classId, (others.get(n.classId) ?? 0) + 1);
      const [main, count] = [...others].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0];
      flags[j].push({
        kind: 'impure',
        reason:
          `only ${own} of its ${p.nearest.length} nearest training patches are ${name(p.classId)}; most of ` +
          `the others (${count}) are ${name(main)}`,
      });
    }
  });

  // Near-duplicates: pairs much closer than prototypes usually are to their nearest other prototype.
  const live = protos.map((_p, j) => j).filter((j) => !protos[j].pruned);
  const d2 = (a: number, b: number) => {
    let s = 0;
    for (let k = 0; k < dim; k++) {
      const d = vectors[a * dim + k] - vectors[b * dim + k];
      s += d * d;
    }
    return s;
  };
  const nn = new Float64Array(m).fill(Infinity);
  const pairs: [number, number, number][] = [];
  for (let x = 0; x < live.length; x++) {
    for (let y = x + 1; y < live.length; y++) {
      const [a, b] = [live[x], live[y]];
      const d = d2(a, b);
      if (d < nn[a]) nn[a] = d;
      if (d < nn[b]) nn[b] = d;
      pairs.push([a, b, d]);
    }
  }
  const nnLive = live
    .map((j) => nn[j])
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  const median = nnLive.length ? nnLive[Math.floor(nnLive.length / 2)] : 0;
  const images = (p: CandidatePrototype) =>
    new Set([...(p.source ? [p.source.imageId] : []), ...p.nearest.map((n) => n.imageId)]);
  const flagged = new Set<number>();
  for (const [a, b, d] of pairs.sort((u, v) => u[2] - v[2])) {
    if (flagged.has(b) || !(d <= rules.duplicateDistance * median || d === 0)) continue;
    const ia = images(protos[a]);
    const ib = images(protos[b]);
    const shared = [...ib].filter((i) => ia.has(i)).length;
    const share = shared / Math.max(1, Math.min(ia.size, ib.size));
    if (share < rules.duplicateShared) continue;
    flagged.add(b);
    flags[b].push({
      kind: 'duplicate',
      reason:
        `near-duplicate of prototype ` +
        `${a}${protos[a].classId === protos[b].classId ? '' : ` (${name(protos[a].classId)})`}: embeddings ` +
        `${short(d)} apart (a prototype's nearest other is typically ${short(median)}), ${shared} of ` +
        `${Math.min(ia.size, ib.size)} nearest training images shared`,
    });
  }
  return flags;
}

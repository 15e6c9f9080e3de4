/**
 * How many of a class's prototypes repeat one another: pushed onto the same patch, onto a
 * neighbouring patch of the same image, or onto the same image as a class-mate. A repeated
 * prototype adds a second copy of the same evidence to the atlas and the explanation.
 */

/** What the measure reads of a prototype (a bundle manifest's prototype entries fit; pushedPrototypes reads a model.json). */
export interface PushedPrototype {
  classId: number;
  pruned: boolean;
  source: { imageId: string; patch: { row: number; col: number } } | null;
}

export interface Redundancy {
  /** Live prototypes with a source patch. */
  prototypes: number;
  /** Prototypes on exactly the patch of a class-mate listed before them. */
  samePatch: number;
  /** Prototypes within one cell (8-neighbourhood or same patch) of a class-mate, same image. */
  adjacent: number;
  /** Prototypes on an image a class-mate was already pushed onto. */
  sameImage: number;
}

export function prototypeRedundancy(prototypes: readonly PushedPrototype[]): Redundancy {
  const seen = new Map<string, { row: number; col: number }[]>();
  const out: Redundancy = { prototypes: 0, samePatch: 0, adjacent: 0, sameImage: 0 };
  for (const p of prototypes) {
    if (p.pruned || !p.source) continue;
    out.prototypes++;
    const key = `${p.classId}\u0000${p.source.imageId}`;
    const earlier = seen.get(key) ?? [];
    const { row, col } = p.source.patch;
    if (earlier.length) out.sameImage++;
    if (earlier.some((q) => q.row === row && q.col === col)) out.samePatch++;
    if (earlier.some((q) => Math.abs(q.row - row) <= 1 && Math.abs(q.col - col) <= 1)) out.adjacent++;
    earlier.push({ row, col });
    seen.set(key, earlier);
  }
  return out;
}

/** The same view of a trained model's model.json (its push records and pruned list), for runs without a bundle. */
export function pushedPrototypes(model: {
  prototypeClass: number[];
  prototypes: { imageId: string | null; row: number; col: number }[] | null;
  pruned: { prototype: number }[];
}): PushedPrototype[] {
  const pruned = new Set(model.pruned.map((p) => p.prototype));
  return model.prototypeClass.map((classId, j) => {
    const r = model.prototypes?.[j];
    return {
      classId,
      pruned: pruned.has(j),
      source: r?.imageId != null ? { imageId: r.imageId, patch: { row: r.row, col: r.col } } : null,
    };
  });
}

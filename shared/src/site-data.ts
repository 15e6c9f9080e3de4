import type { Manifest } from './manifest.ts';

/**
 * Facts the atlas derives from a bundle, kept here so the edge can link to the
 * same atlas pages the site builds (paths are relative to the site's base).
 */

/** URL-safe species slug from its class key: "001.Black_footed_Albatross" -> "001-black-footed-albatross". */
export function speciesSlug(key: string): string {
  const s = key
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return s || 'species';
}

export const atlasPath = {
  species: (key: string) => `species/${speciesSlug(key)}/`,
  prototype: (id: number) => `prototypes/${id}/`,
};

/** A loose family for filtering: the last word of the common name ("Black footed Albatross" -> "Albatross"). */
export function speciesGroup(name: string): string {
  const last =
    name
      .trim()
      .split(/[\s_]+/)
      .pop() ?? name;
  return last ? last[0].toUpperCase() + last.slice(1) : name;
}

export interface Vote {
  prototypeId: number;
  /** The class the voting prototype belongs to. */
  fromClassId: number;
  weight: number;
}

/** Live prototypes of other classes whose last-layer weight to classId is positive, strongest first. */
export function votesFor(m: Pick<Manifest, 'prototypes'>, classId: number, minWeight = 1e-3): Vote[] {
  return m.prototypes
    .filter((p) => !p.pruned && p.classId !== classId && p.weights[classId] > minWeight)
    .map((p) => ({ prototypeId: p.id, fromClassId: p.classId, weight: p.weights[classId] }))
    .sort((a, b) => b.weight - a.weight || a.prototypeId - b.prototypeId);
}

export interface LookAlike {
  classId: number;
  /** Prototypes of classId with at least one nearest training patch from the target class. */
  prototypes: number[];
  /** How many of their nearest training patches come from the target class. */
  patches: number;
}

/** Other species whose prototypes find their nearest training patches on this one: likely confusions. */
export function lookAlikes(m: Pick<Manifest, 'prototypes'>, classId: number): LookAlike[] {
  const byClass = new Map<number, LookAlike>();
  for (const p of m.prototypes) {
    if (p.classId === classId) continue;
    const hits = p.nearest.train.filter((n) => n.classId === classId).length;
    if (!hits) continue;
    const a = byClass.get(p.classId) ?? { classId: p.classId, prototypes: [], patches: 0 };
    a.prototypes.push(p.id);
    a.patches += hits;
    byClass.set(p.classId, a);
  }
  return [...byClass.values()].sort((a, b) => b.patches - a.patches || a.classId - b.classId);
}

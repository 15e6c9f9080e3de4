import type { Rng } from '../core/rng.ts';

/** The local parts that decide a synthetic bird's class (body, head and background never do). */
export const PARTS = ['beak', 'crest', 'wingbar', 'tail', 'eyering'] as const;
export type PartName = (typeof PARTS)[number];

/** Every value a part can take; beak values are "<colour>-<shape>". */
export const PART_VALUES: Record<PartName, readonly string[]> = {
  beak: ['yellow', 'red', 'black'].flatMap((c) => ['cone', 'thin', 'hooked'].map((s) => `${c}-${s}`)),
  crest: ['none', 'red', 'blue', 'yellow'],
  wingbar: ['white', 'yellow', 'red', 'blue'],
  tail: ['fan', 'forked', 'pointed'],
  eyering: ['white', 'red', 'blue'],
};

export type PartValues = Record<PartName, string>;

/**
 * A class fixes the value of some parts (its discriminative parts); the others are
 * drawn at random per image, so they carry no information about the class.
 */
export interface SyntheticClassSpec {
  name: string;
  attributes: Partial<PartValues>;
  discriminativeParts: PartName[];
}

/**
 * Each class fixes the beak and all but one of the other parts, so every class also
 * has a nuisance part. The beak is always fixed because it is the part people look at
 * first ("this looks like that beak"), and unconstrained designs tend to drop it.
 */
const ALWAYS_FIXED: PartName = 'beak';
/** Any two classes must differ in this many parts that both fix. */
export const MIN_PART_DIFFERENCES = 2;
/** Margin tried first (met for up to ~12 classes); falls back to the minimum above. */
const PREFERRED_DIFFERENCES = 3;

/** Parts that both classes fix and on which they disagree. */
export function differingParts(a: Partial<PartValues>, b: Partial<PartValues>): PartName[] {
  return PARTS.filter((p) => a[p] !== undefined && b[p] !== undefined && a[p] !== b[p]);
}

/**
 * Choose `n` classes, each fixing four of the five parts, such that every pair differs in
 * at least MIN_PART_DIFFERENCES parts fixed by both: a bird's class is then recoverable
 * from its parts whatever its random parts show. A wider margin (PREFERRED_DIFFERENCES)
 * is used when it can be met, as it makes the classes easier to learn from few images.
 * Greedy random search with restarts.
 */
export function designClasses(n: number, rng: Rng): SyntheticClassSpec[] {
  for (let minDiff = PREFERRED_DIFFERENCES; minDiff >= MIN_PART_DIFFERENCES; minDiff--) {
    for (let restart = 0; restart < 30; restart++) {
      const chosen = greedyDesign(n, minDiff, rng);
      if (chosen.length === n) {
        return chosen.map((attributes, i) => ({
          name: `${String(i + 1).padStart(3, '0')}.${className(attributes)}`,
          attributes,
          discriminativeParts: PARTS.filter((p) => attributes[p] !== undefined),
        }));
      }
    }
  }
  throw new Error(
    `cannot design ${n} synthetic classes that pairwise differ in ${MIN_PART_DIFFERENCES} parts; use at most 30 classes`,
  );
}

function greedyDesign(n: number, minDiff: number, rng: Rng): Partial<PartValues>[] {
  const chosen: Partial<PartValues>[] = [];
  for (let tries = 0; tries < 3000 && chosen.length < n; tries++) {
    const free = pick(
      rng,
      PARTS.filter((p) => p !== ALWAYS_FIXED),
    );
    const cand: Partial<PartValues> = {};
    for (const p of PARTS) if (p !== free) cand[p] = pick(rng, PART_VALUES[p]);
    if (chosen.every((c) => differingParts(c, cand).length >= minDiff)) chosen.push(cand);
  }
  return chosen;
}

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)];
}

const cap = (s: string) => s[0].toUpperCase() + s.slice(1);
const BEAK_WORD: Record<string, string> = { cone: 'Stubby', thin: 'Slender', hooked: 'Hooked' };
const TAIL_WORD: Record<string, string> = { fan: 'Fantail', forked: 'Forktail', pointed: 'Pintail' };

/** E.g. "Red_Hooked_Bluecrest_Whitebar_Forktail": the fixed parts in PARTS order. */
function className(a: Partial<PartValues>): string {
  const words: string[] = [];
  if (a.beak) {
    const [colour, shape] = a.beak.split('-');
    words.push(cap(colour), BEAK_WORD[shape]);
  }
  if (a.crest) words.push(a.crest === 'none' ? 'Crestless' : `${cap(a.crest)}crest`);
  if (a.wingbar) words.push(`${cap(a.wingbar)}bar`);
  if (a.tail) words.push(TAIL_WORD[a.tail]);
  if (a.eyering) words.push(`${cap(a.eyering)}eye`);
  return words.join('_');
}

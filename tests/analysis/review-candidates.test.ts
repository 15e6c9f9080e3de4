import { describe, expect, it } from 'vitest';
import { reviewCandidates, type CandidatePrototype } from '../../trainer/src/analysis/review-candidates.ts';

const names = ['Red Bird', 'Blue Bird'];
const grid = { height: 7, width: 7 };
const proto = (over: Partial<CandidatePrototype> = {}): CandidatePrototype => ({
  classId: 0,
  pruned: false,
  purity: 1,
  source: { imageId: 's', row: 3, col: 3 },
  nearest: [1, 2, 3, 4].map((i) => ({ imageId: `n${i}`, row: 3, col: 3, classId: 0 })),
  noPart: 0,
  ...over,
});
/** Prototype vectors on a line: index i at x = 10 * i, so no two are near. */
const spread = (m: number, dim = 2) =>
  Float32Array.from({ length: m * dim }, (_, k) => (k % dim === 0 ? 10 * Math.floor(k / dim) : 0));

describe('review candidates', () => {
  it('flags nothing on well-behaved prototypes', () => {
    expect(reviewCandidates([proto(), proto(), proto()], spread(3), 2, grid, names)).toEqual([[], [], []]);
  });

  it('flags background by missing parts and by the border, with the reason', () => {
    const borderCells = [0, 1, 2, 3].map((i) => ({ imageId: `b${i}`, row: 0, col: i, classId: 0 }));
    const flags = reviewCandidates(
      [
        proto({ noPart: 0.75 }),
        proto({ source: { imageId: 's', row: 6, col: 6 }, nearest: borderCells }),
        proto({ noPart: null, birdShare: 0.1 }),
        proto({ noPart: null, birdShare: 0.3 }),
        proto({ noPart: 0.75, pruned: true }),
      ],
      spread(5),
      2,
      grid,
      names,
    );
    expect(flags[0]).toEqual([
      { kind: 'background', reason: "its region covers no annotated bird part on 75% of Red Bird's validation images" },
    ]);
    expect(flags[1]).toEqual([
      {
        kind: 'background',
        reason: 'activates on the image border: 5 of its 5 patches lie on the outer ring of the 7×7 grid',
      },
    ]);
    expect(flags[2]).toEqual([
      { kind: 'background', reason: 'only 10% of its box on the source image lies on the bird' },
    ]);
    expect(flags[3]).toEqual([]);
    expect(flags[4]).toEqual([]); // pruned: nothing to review
  });

  it('flags impure prototypes with the species their neighbours come from', () => {
    const nearest = [0, 1, 1, 1].map((c, i) => ({ imageId: `n${i}`, row: 2, col: 2, classId: c }));
    const [f] = reviewCandidates([proto({ purity: 0.25, nearest })], spread(1), 2, grid, names);
    expect(f).toEqual([
      {
        kind: 'impure',
        reason: 'only 1 of its 4 nearest training patches are Red Bird; most of the others (3) are Blue Bird',
      },
    ]);
  });

  it('flags the later of two near-identical prototypes sharing neighbours, not a close pair with other ones', () => {
    // Eight prototypes 10 apart (typical squared distance to the nearest other: 100), two moved close to another.
    const vectors = spread(8);
    vectors[2] = 0.01; // prototype 1 sits next to prototype 0
    vectors[6] = 20.01; // prototype 3 sits next to prototype 2, with other neighbours
    const other = [5, 6, 7, 8].map((i) => ({ imageId: `n${i}`, row: 3, col: 3, classId: 0 }));
    const unique = (k: number) =>
      proto({
        source: { imageId: `u${k}`, row: 3, col: 3 },
        nearest: [{ imageId: `u${k}n`, row: 3, col: 3, classId: 0 }],
      });
    const protos = [
      proto(),
      proto(),
      proto(),
      proto({ source: { imageId: 'z', row: 3, col: 3 }, nearest: other }),
      unique(4),
      unique(5),
      unique(6),
      unique(7),
    ];
    const flags = reviewCandidates(protos, vectors, 2, grid, names);
    expect(flags[0]).toEqual([]);
    expect(flags[1]).toHaveLength(1);
    expect(flags[1][0].kind).toBe('duplicate');
    expect(flags[1][0].reason).toBe(
      "near-duplicate of prototype 0: embeddings 0.0001 apart (a prototype's nearest other is typically 100), " +
        '5 of 5 nearest training images shared',
    );
    expect(flags[2]).toEqual([]);
    expect(flags[3]).toEqual([]);
    expect(flags.slice(4)).toEqual([[], [], [], []]);
  });
});

import { describe, expect, it } from 'vitest';
import {
  prototypeRedundancy,
  pushedPrototypes,
  type PushedPrototype,
} from '../../trainer/src/analysis/prototype-redundancy.ts';

const at = (classId: number, imageId: string, row: number, col: number, pruned = false): PushedPrototype => ({
  classId,
  pruned,
  source: { imageId, patch: { row, col } },
});

describe('prototype redundancy', () => {
  it('counts repeats of a class-mate: same patch, a neighbouring cell, the same image', () => {
    const r = prototypeRedundancy([
      at(0, 'a', 3, 3),
      at(0, 'a', 3, 3), // same patch (also adjacent, same image)
      at(0, 'a', 4, 2), // diagonal neighbour of (3, 3)
      at(0, 'a', 6, 6), // same image, far away
      at(0, 'b', 3, 3), // another image: no repeat
      at(1, 'a', 3, 3), // another class on the same patch: no repeat
      at(1, 'a', 3, 5, true), // pruned: not counted
      { classId: 1, pruned: false, source: null }, // never pushed: not counted
    ]);
    expect(r).toEqual({ prototypes: 6, samePatch: 1, adjacent: 2, sameImage: 3 });
  });
  it('is all zero for distinct sources', () => {
    expect(prototypeRedundancy([at(0, 'a', 0, 0), at(0, 'a', 0, 2), at(0, 'b', 0, 0)])).toEqual({
      prototypes: 3,
      samePatch: 0,
      adjacent: 0,
      sameImage: 1,
    });
  });
  it("reads a model.json's push records and pruned list", () => {
    const model = {
      prototypeClass: [0, 0, 1],
      prototypes: [
        { imageId: '7', row: 1, col: 2 },
        { imageId: '7', row: 1, col: 2 },
        { imageId: null, row: 0, col: 0 },
      ],
      pruned: [{ prototype: 1 }],
    };
    expect(pushedPrototypes(model)).toEqual([
      at(0, '7', 1, 2),
      at(0, '7', 1, 2, true),
      { classId: 1, pruned: false, source: null },
    ]);
    // The pruned copy no longer counts as a repeat.
    expect(prototypeRedundancy(pushedPrototypes(model)).samePatch).toBe(0);
    expect(pushedPrototypes({ ...model, prototypes: null }).every((p) => p.source === null)).toBe(true);
  });
});

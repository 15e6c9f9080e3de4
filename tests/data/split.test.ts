import { describe, expect, it } from 'vitest';
import { DatasetError } from '../../trainer/src/data/errors.ts';
import { holdOutValidation } from '../../trainer/src/data/split.ts';
import type { DatasetItem } from '../../trainer/src/data/types.ts';

/** 3 classes with 10, 7 and 5 items, interleaved. */
function items(): DatasetItem[] {
  const out: DatasetItem[] = [];
  const counts = [10, 7, 5];
  for (let k = 0; k < 10; k++) {
    counts.forEach((n, label) => {
      if (k < n) out.push({ id: `c${label}-${k}`, path: `/x/c${label}/${k}.jpg`, label });
    });
  }
  return out;
}

describe('holdOutValidation', () => {
  it('holds out exactly perClass items of every class, disjoint from train, covering the input', () => {
    const all = items();
    const { train, val } = holdOutValidation(all, 3, 2, 42);
    for (let label = 0; label < 3; label++) expect(val.filter((i) => i.label === label)).toHaveLength(2);
    expect(train).toHaveLength(all.length - 6);
    const trainIds = new Set(train.map((i) => i.id));
    expect(val.some((i) => trainIds.has(i.id))).toBe(false);
    expect([...train, ...val].map((i) => i.id).sort()).toEqual(all.map((i) => i.id).sort());
  });

  it('is deterministic for a seed and keeps input order', () => {
    const a = holdOutValidation(items(), 3, 2, 7);
    const b = holdOutValidation(items(), 3, 2, 7);
    expect(a.val.map((i) => i.id)).toEqual(b.val.map((i) => i.id));
    expect(a.train.map((i) => i.id)).toEqual(b.train.map((i) => i.id));
    const order = items().map((i) => i.id);
    const positions = a.val.map((i) => order.indexOf(i.id));
    expect(positions).toEqual([...positions].sort((x, y) => x - y));
  });

  it('different seeds pick different validation items', () => {
    const picks = new Set(
      [0, 1, 2, 3, 4].map((s) =>
        holdOutValidation(items(), 3, 2, s)
          .val.map((i) => i.id)
          .join(','),
      ),
    );
    expect(picks.size).toBeGreaterThan(1);
  });

  it('perClass 0 keeps everything in train', () => {
    const { train, val } = holdOutValidation(items(), 3, 0, 1);
    expect(val).toEqual([]);
    expect(train).toHaveLength(22);
  });

  it('refuses to empty a class', () => {
    expect(() => holdOutValidation(items(), 3, 5, 1)).toThrow(DatasetError);
    expect(() => holdOutValidation(items(), 3, 5, 1)).toThrow(/class 2 has 5 training images/);
    expect(() => holdOutValidation(items(), 3, 5, 1, ['a', 'b', 'Sooty'])).toThrow(/Sooty has 5 training images/);
    expect(holdOutValidation(items(), 3, 4, 1).val).toHaveLength(12);
  });
});

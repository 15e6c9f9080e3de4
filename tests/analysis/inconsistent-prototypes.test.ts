import { describe, expect, it } from 'vitest';
import { inconsistentPrototypes } from '../../trainer/src/analysis/inconsistent-prototypes.ts';

const p = (prototype: number, classIndex: number, topPartFrequency: number) => ({
  prototype,
  classIndex,
  topPartFrequency,
});

describe('inconsistentPrototypes', () => {
  const rows = [p(0, 0, 0.9), p(1, 0, 0.5), p(2, 0, 0.79), p(3, 1, 0.2), p(4, 1, 0.4), p(5, 2, 0.8)];

  it('drops the prototypes below the frequency, keeping each class its best', () => {
    expect(inconsistentPrototypes(rows, 0.8, 1)).toEqual([
      { prototype: 1, frequency: 0.5 },
      { prototype: 2, frequency: 0.79 },
      { prototype: 3, frequency: 0.2 },
    ]);
    // Class 1 has no consistent prototype: its best (4) stays; with two kept per class, 2 and 3 stay too.
    expect(inconsistentPrototypes(rows, 0.8, 2).map((d) => d.prototype)).toEqual([1]);
    expect(inconsistentPrototypes(rows, 0, 1)).toEqual([]);
  });

  it('breaks ties by index and refuses bad settings', () => {
    expect(inconsistentPrototypes([p(7, 0, 0.5), p(6, 0, 0.5)], 0.8, 1)).toEqual([{ prototype: 7, frequency: 0.5 }]);
    expect(() => inconsistentPrototypes(rows, 1.5, 1)).toThrow(/minFrequency/);
    expect(() => inconsistentPrototypes(rows, 0.8, 0)).toThrow(/keepPerClass/);
  });
});

import { Rng } from '../core/rng.ts';
import { DatasetError } from './errors.ts';
import type { DatasetItem } from './types.ts';

/**
 * Hold out `perClass` random training images of every class as validation. Seeded and
 * deterministic; the test split is never involved. Both outputs keep the input order.
 * `classNames` only makes error messages readable.
 */
export function holdOutValidation(
  train: DatasetItem[],
  nClasses: number,
  perClass: number,
  seed: number,
  classNames?: string[],
  /** The config field that asked for the hold-out, for error messages. */
  field = 'valPerClass',
): { train: DatasetItem[]; val: DatasetItem[] } {
  if (!Number.isInteger(perClass) || perClass < 0)
    throw new Error(`holdOutValidation: perClass must be a non-negative integer, got ${perClass}`);
  if (perClass === 0) return { train: [...train], val: [] };
  const byClass: number[][] = Array.from({ length: nClasses }, () => []);
  train.forEach((item, i) => {
    if (item.label < 0 || item.label >= nClasses)
      throw new Error(`holdOutValidation: item ${item.id} has label ${item.label}, outside 0..${nClasses - 1}`);
    byClass[item.label].push(i);
  });
  const rng = new Rng(seed);
  const isVal = new Uint8Array(train.length);
  byClass.forEach((indices, label) => {
    // Keep at least one training image per class, or that class could never be learnt.
    if (indices.length <= perClass) {
      const name = classNames?.[label] ?? `class ${label}`;
      throw new DatasetError(
        `${name} has ${indices.length} training images, too few to hold out ${perClass} (${field})`,
        {
          fix: `lower ${field} below ${indices.length} or add images to the class`,
        },
      );
    }
    for (const i of rng.shuffle([...indices]).slice(0, perClass)) isVal[i] = 1;
  });
  return { train: train.filter((_, i) => !isVal[i]), val: train.filter((_, i) => isVal[i]) };
}

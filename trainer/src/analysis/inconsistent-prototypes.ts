/**
 * Which prototypes land on no steady part of their class's images: those whose most covered part is covered
 * on fewer than `minFrequency` of the images (Huang et al.'s consistency rule, as a frequency), except each
 * class's `keepPerClass` most consistent prototypes, so that no class loses all of its evidence.
 */
import type { PrototypePartMetrics } from './part-metrics.ts';

export function inconsistentPrototypes(
  perPrototype: readonly Pick<PrototypePartMetrics, 'prototype' | 'classIndex' | 'topPartFrequency'>[],
  minFrequency: number,
  keepPerClass: number,
): { prototype: number; frequency: number }[] {
  if (!(minFrequency >= 0 && minFrequency <= 1))
    throw new Error(`minFrequency must lie in [0, 1], got ${minFrequency}`);
  if (!(Number.isInteger(keepPerClass) && keepPerClass >= 1))
    throw new Error(`keepPerClass must be a whole number >= 1 (a class needs a prototype), got ${keepPerClass}`);
  const byClass = new Map<number, (typeof perPrototype)[number][]>();
  for (const p of perPrototype) byClass.set(p.classIndex, [...(byClass.get(p.classIndex) ?? []), p]);
  const drops: { prototype: number; frequency: number }[] = [];
  for (const list of byClass.values()) {
    // Most consistent first; ties keep the lower index.
    const sorted = [...list].sort((a, b) => b.topPartFrequency - a.topPartFrequency || a.prototype - b.prototype);
    for (const p of sorted.slice(keepPerClass))
      if (p.topPartFrequency < minFrequency) drops.push({ prototype: p.prototype, frequency: p.topPartFrequency });
  }
  return drops.sort((a, b) => a.prototype - b.prototype);
}

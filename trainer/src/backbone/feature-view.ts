/**
 * A view of a training image whose feature maps are cached: the image as it
 * is, mirrored, or one fixed augmented copy of it (the paper augments CUB
 * offline, before training; with a frozen backbone the copies' feature maps
 * are computed once, like the mirrored ones).
 */
import { createHash } from 'node:crypto';
import { augmentedInput, type AugmentSpec } from '../data/augment.ts';
import type { PreprocessSpec, RgbImage } from '../data/types.ts';
import { Rng } from '../core/rng.ts';

export interface FeatureView {
  flip: boolean;
  /** An augmented copy: one random transform per image, drawn from `seed` and the item's id. */
  augment?: { spec: AugmentSpec; seed: number };
}

export const ORIGINAL: FeatureView = { flip: false };
export const MIRRORED: FeatureView = { flip: true };

/** The transform's seed for one item: fixed by the view and the item's id, not by its position in the list. */
export function viewSeed(seed: number, itemId: string): number {
  return createHash('sha256').update(`${seed}\n${itemId}`).digest().readUInt32LE(0);
}

/** An augmented view's normalised input for one image: its fixed transform and input noise. */
export function augmentedViewInput(
  augment: NonNullable<FeatureView['augment']>,
  flip: boolean,
  image: RgbImage,
  itemId: string,
  pre: PreprocessSpec,
): Float32Array {
  return augmentedInput(image, augment.spec, new Rng(viewSeed(augment.seed, itemId)), flip, pre);
}

export function describeView(view: FeatureView): string {
  if (view.augment)
    return `augmented #${view.augment.seed}${view.augment.spec.noise ? ' noisy' : ''}${view.flip ? ' mirrored' : ''}`;
  return view.flip ? 'flipped' : 'original';
}

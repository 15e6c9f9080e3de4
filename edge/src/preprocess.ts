/**
 * Decoded pixels to the model's input tensor (shared modelInputRgb: the
 * trainer's preprocessing), with the size boxes are given in: the stored
 * image's, as displayed.
 */
import { modelInputRgb, orientedSize, type Orientation } from '@protoatlas/shared';
import type { DecodedImage } from './decode.ts';

export interface ModelInput {
  /** size x size x 3 floats, 0-255. */
  tensor: Float32Array;
  /** The displayed image's size: boxes are in these pixels. */
  width: number;
  height: number;
}

/** `stored`: the file's own size (a JPEG may have been decoded smaller). */
export function toModelInput(
  img: DecodedImage,
  stored: { width: number; height: number },
  orientation: Orientation,
  size: number,
): ModelInput {
  const tensor = new Float32Array(modelInputRgb(img, orientation, size));
  return { tensor, ...orientedSize(stored.width, stored.height, orientation) };
}

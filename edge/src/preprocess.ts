/**
 * Decoded pixels to model input, exactly as training saw images: the photo as
 * displayed (EXIF orientation applied), alpha on white, stretched to S x S
 * (aspect ignored), 8-bit RGB; the graph normalises. The stored image is
 * resized first and the S x S result turned: the same pixels as turning first
 * (each axis is filtered independently), without rotating a full-size photo.
 * A JPEG arrives already decoded at the reduced scale sharp's resize reads it
 * at, so the resize starts from the trainer's pixels.
 */
import { orientedSize, orientPixels, resizeStretch, type Orientation } from '@protoatlas/shared';
import type { DecodedImage } from './decode.ts';

export interface ModelInput {
  /** size x size x 3 floats, 0-255. */
  tensor: Float32Array;
  /** The displayed image's size: boxes are in these pixels. */
  width: number;
  height: number;
}

/** `stored`: the file's own size (a JPEG may have been decoded smaller); boxes are in its pixels. */
export function toModelInput(img: DecodedImage, stored: { width: number; height: number }, orientation: Orientation, size: number): ModelInput {
  const rgb = resizeStretch(img, size, size);
  const turned = orientPixels(rgb, size, size, 3, orientation).data;
  return { tensor: Float32Array.from(turned), ...orientedSize(stored.width, stored.height, orientation) };
}

/**
 * Decoded pixels to the model's input pixels, as training saw images: the
 * photo as displayed (EXIF orientation applied), alpha on white, stretched to
 * S x S (aspect ignored), 8-bit RGB. The stored image is resized first and the
 * S x S result turned: the same pixels as turning first (each axis is filtered
 * independently), without rotating a full-size photo. A JPEG may arrive
 * already decoded at the reduced scale sharp's resize reads it at
 * (jpegShrinkOnLoad), so the resize starts from the trainer's pixels.
 */
import { orientPixels, type Orientation } from './exif.ts';
import { resizeStretch, type PixelSource } from './image-resize.ts';

export function modelInputRgb(stored: PixelSource, orientation: Orientation, size: number): Uint8Array {
  const rgb = resizeStretch(stored, size, size);
  return orientPixels(rgb, size, size, 3, orientation).data;
}

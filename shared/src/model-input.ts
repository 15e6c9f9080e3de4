/**
 * Decoded pixels to the model's input pixels, as training saw images: the
 * photo as displayed (EXIF orientation applied), alpha on white, stretched to
 * S x S (aspect ignored), 8-bit RGB. The stored image is resized first and the
 * S x S result turned: the same pixels as turning first (each axis is filtered
 * independently), without rotating a full-size photo. A JPEG may arrive
 * already decoded at the reduced scale sharp's resize reads it at
 * (jpegShrinkOnLoad), so the resize starts from the trainer's pixels. A PNG
 * may arrive already through the resize's box pre-shrink (its rows streamed
 * from the decoder into a BoxShrinker made for this size): the same pixels as
 * resizing the whole decoded image, without holding it.
 */
import { orientPixels, type Orientation } from './exif.ts';
import { resizeShrunk, resizeStretch, type BoxShrunk, type PixelSource } from './image-resize.ts';

/** Decoded pixels, or the box pre-shrink of them made by boxShrinkerFor(w, h, size, size). */
export type StoredPixels = PixelSource | { shrunk: BoxShrunk };

export function modelInputRgb(stored: StoredPixels, orientation: Orientation, size: number): Uint8Array {
  const rgb = 'shrunk' in stored ? resizeShrunk(stored.shrunk, size, size) : resizeStretch(stored, size, size);
  return orientPixels(rgb, size, size, 3, orientation).data;
}

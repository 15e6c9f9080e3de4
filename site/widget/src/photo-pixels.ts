/**
 * A photo to the model's input pixels in the browser, as the edge and the
 * trainer make them. A JPEG is decoded by the shared libjpeg-turbo wasm (the
 * file next to the widget script, fetched on first use) at the scale sharp
 * would read it at, so CMYK and YCCK files get the trainer's colours and a
 * 12 MP photo is never decoded whole. Other formats come from the browser's
 * own decoder (the bitmap, already turned by its EXIF orientation).
 */
import { readOrientation } from '../../../shared/src/exif.ts';
import { readImageHeader, sniffImageFormat } from '../../../shared/src/image-header.ts';
import { JpegDecodeError, WasmJpegDecoder, jpegShrinkOnLoad } from '../../../shared/src/jpeg-wasm.ts';
import { modelInputRgb } from '../../../shared/src/model-input.ts';

export const JPEG_WASM_FILE = 'jpeg-decode.wasm';

const decoders = new Map<string, Promise<WasmJpegDecoder>>();

function jpegDecoder(wasmUrl: string): Promise<WasmJpegDecoder> {
  let d = decoders.get(wasmUrl);
  if (!d) {
    d = (async () => {
      const res = await fetch(wasmUrl);
      if (!res.ok) throw new Error(`could not load the JPEG decoder ${wasmUrl} (${res.status})`);
      return new WasmJpegDecoder(await WebAssembly.compile(await res.arrayBuffer()));
    })();
    d.catch(() => decoders.delete(wasmUrl)); // let the next photo retry
    decoders.set(wasmUrl, d);
  }
  return d;
}

/** S x S x 3 bytes of model input for `photo` (`bitmap` is the browser's decode of it). */
export async function photoPixels(
  photo: Blob,
  bitmap: ImageBitmap,
  size: number,
  jpegWasm: string,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(await photo.arrayBuffer());
  if (sniffImageFormat(bytes) === 'jpeg') {
    const head = readImageHeader(bytes, { checkComplete: false });
    const decoder = await jpegDecoder(jpegWasm);
    try {
      const stored = await decoder.decode(bytes, jpegShrinkOnLoad(head.width, head.height, size, size));
      return modelInputRgb(stored, readOrientation(bytes), size);
    } catch (e) {
      if (e instanceof JpegDecodeError) throw new Error(`this JPEG could not be decoded: ${e.message}`);
      throw e;
    }
  }
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('this browser cannot read image pixels (no 2D canvas)');
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  canvas.width = canvas.height = 0; // free the full-size buffer now, not at GC
  return modelInputRgb({ data: rgba, width: bitmap.width, height: bitmap.height, channels: 4 }, 1, size);
}

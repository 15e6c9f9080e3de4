/**
 * Image decoders that run in workerd and Node alike: the shared libjpeg-turbo
 * build (decoding straight to a reduced scale, as the trainer's sharp does),
 * the shared row-streaming PNG decoder (its rows go straight into the resize's
 * box pre-shrink, so no full-size copy is kept) and the shared libwebp build
 * (decoding through libwebp's rescaler to the size sharp reads a WebP at). The
 * .wasm files are handed in precompiled (workerd forbids compiling wasm at run
 * time; the Worker imports them as modules, Node compiles them once at start).
 */
import {
  JpegDecodeError,
  PngDecodeError,
  WasmJpegDecoder,
  WasmWebpDecoder,
  WebpDecodeError,
  boxShrinkerFor,
  decodePngRows,
  jpegShrinkOnLoad,
  webpShrinkOnLoad,
  type BoxShrinker,
  type BoxShrunk,
  type ImageFormat,
  type JpegScale,
  type PixelSource,
} from '@protoatlas/shared';
import { ApiError } from './errors.ts';

export interface DecoderModules {
  /** shared/wasm/jpeg-decode.wasm */
  jpeg: WebAssembly.Module;
  /** shared/wasm/webp-decode.wasm */
  webp: WebAssembly.Module;
}

interface Size {
  width: number;
  height: number;
}

/**
 * Pixels (8 bits per channel, row-major, RGB or RGBA) decoded at 1/scale of
 * the stored size, or, for PNG, the resize's box pre-shrink of them for the
 * model input size the decode was asked for.
 */
export type DecodedImage = (PixelSource & { scale: JpegScale }) | { shrunk: BoxShrunk; scale: 1 };

/**
 * One per isolate. Each wasm decoder keeps one instance and drops it after a
 * failure or a decode that grew its memory past a few megabytes.
 */
export class ImageDecoder {
  private readonly jpeg: WasmJpegDecoder;
  private readonly webp: WasmWebpDecoder;

  constructor(modules: DecoderModules) {
    this.jpeg = new WasmJpegDecoder(modules.jpeg);
    this.webp = new WasmWebpDecoder(modules.webp);
  }

  /** The JPEG decoder's largest wasm memory so far (null before the first JPEG). */
  get jpegPeakMemoryBytes(): number | null {
    return this.jpeg.peakMemoryBytes;
  }

  /** The WebP decoder's largest wasm memory so far (null before the first WebP). */
  get webpPeakMemoryBytes(): number | null {
    return this.webp.peakMemoryBytes;
  }

  /**
   * Decodes for a model input of `target` x `target`: a JPEG at the DCT scale
   * sharp's resize would use (never below the target), a PNG streamed into
   * the resize's box pre-shrink for that size, a WebP at the reduced size
   * sharp's resize would read it at.
   * Any decoder failure becomes a 422 with the decoder's reason.
   */
  async decode(format: ImageFormat, bytes: Uint8Array, expected: Size, target: number): Promise<DecodedImage> {
    if (format === 'jpeg') return this.decodeJpeg(bytes, expected, target);
    if (format === 'png') return this.decodePng(bytes, expected, target);
    return this.decodeWebp(bytes, expected, target);
  }

  private async decodeWebp(bytes: Uint8Array, expected: Size, target: number): Promise<DecodedImage> {
    const size = webpShrinkOnLoad(expected.width, expected.height, target, target);
    let img: Awaited<ReturnType<typeof this.webp.decode>>;
    try {
      img = await this.webp.decode(bytes, size.width, size.height);
    } catch (e) {
      throw undecodable('webp', e instanceof WebpDecodeError ? e.message : String(e));
    }
    checkSize('webp', { ...img.stored, data: [] }, expected, 0);
    const { stored: _, ...pixels } = img;
    return { ...pixels, scale: 1 };
  }

  private async decodePng(bytes: Uint8Array, expected: Size, target: number): Promise<DecodedImage> {
    let shrinker: BoxShrinker | null = null;
    let channels: 3 | 4 = 3;
    try {
      await decodePngRows(
        bytes,
        (i) => {
          checkSize('png', { ...i, data: [] }, expected, 0);
          shrinker = boxShrinkerFor(i.width, i.height, target, target);
          channels = i.channels;
        },
        (row, y) => shrinker!.push(row, 0, channels, y),
      );
      return { shrunk: shrinker!.result(), scale: 1 };
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw undecodable('png', e instanceof PngDecodeError ? e.message : String(e));
    }
  }

  private async decodeJpeg(bytes: Uint8Array, expected: Size, target: number): Promise<DecodedImage> {
    const scale = jpegShrinkOnLoad(expected.width, expected.height, target, target);
    let img: Awaited<ReturnType<typeof this.jpeg.decode>>;
    try {
      img = await this.jpeg.decode(bytes, scale);
    } catch (e) {
      throw undecodable('jpeg', e instanceof JpegDecodeError ? e.message : String(e));
    }
    // A scaled size rounds down, as in libvips.
    const scaled = { width: Math.floor(expected.width / scale), height: Math.floor(expected.height / scale) };
    checkSize('jpeg', img, scaled, img.data.length);
    return { ...img, scale };
  }
}

const undecodable = (format: ImageFormat, why: string) =>
  new ApiError('undecodable_image', `the ${format.toUpperCase()} image could not be decoded: ${why}`);

function checkSize(format: ImageFormat, img: Size & { data: ArrayLike<number> }, expected: Size, bytes: number): void {
  if (img.width !== expected.width || img.height !== expected.height || img.data.length !== bytes) {
    const got = `${img.width}x${img.height}`;
    const want = `${expected.width}x${expected.height}`;
    throw new ApiError('undecodable_image', `the ${format.toUpperCase()} image decoded to ${got}, expected ${want}`);
  }
}

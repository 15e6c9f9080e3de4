/**
 * Image decoders that run in workerd and Node alike: the shared libjpeg-turbo
 * build (decoding straight to a reduced scale, as the trainer's sharp does),
 * the shared row-streaming PNG decoder (its rows go straight into the resize's
 * box pre-shrink, so no full-size copy is kept) and the @jsquash WebAssembly
 * build of libwebp. The .wasm files are handed in precompiled (workerd forbids
 * compiling wasm at run time; the Worker imports them as modules, Node
 * compiles them once at start).
 */
import decodeWebpWasm, { init as initWebpRaw } from '@jsquash/webp/decode.js';
import {
  JpegDecodeError,
  PngDecodeError,
  WasmJpegDecoder,
  boxShrinkerFor,
  decodePngRows,
  jpegShrinkOnLoad,
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

type EmscriptenInit = (module: WebAssembly.Module, overrides?: Record<string, unknown>) => Promise<void>;
const initWebp = initWebpRaw as unknown as EmscriptenInit;

/** The decoders build ImageData, which Node (and possibly a runtime) lacks. */
export function ensureImageData(): void {
  const g = globalThis as { ImageData?: unknown };
  if (typeof g.ImageData === 'function') return;
  g.ImageData = class ImageData {
    readonly data: Uint8ClampedArray;
    readonly width: number;
    readonly height: number;
    readonly colorSpace = 'srgb';
    constructor(data: Uint8ClampedArray, width: number, height: number) {
      this.data = data;
      this.width = width;
      this.height = height;
    }
  };
}

/**
 * Above this many pixels a decode leaves the decoder's wasm memory large (it
 * never shrinks), so the instance is replaced afterwards and the old one freed.
 */
const RESET_AFTER_PIXELS = 8_000_000;

/**
 * One per isolate: the jsquash modules keep their instance in module state.
 * Decoder messages (mozjpeg prints warnings and errors) are captured into the
 * error instead of the log.
 */
export class ImageDecoder {
  private readonly modules: DecoderModules;
  private readonly jpeg: WasmJpegDecoder;
  private webpReady = false;
  private messages: string[] = [];

  constructor(modules: DecoderModules) {
    this.modules = modules;
    this.jpeg = new WasmJpegDecoder(modules.jpeg);
    ensureImageData();
  }

  /** The JPEG decoder's largest wasm memory so far (null before the first JPEG). */
  get jpegPeakMemoryBytes(): number | null {
    return this.jpeg.peakMemoryBytes;
  }

  private emscriptenOptions(): Record<string, unknown> {
    const sink = (text: string) => {
      if (this.messages.length < 20) this.messages.push(String(text));
    };
    return { print: sink, printErr: sink };
  }

  private resetWebp(): void {
    void initWebp(this.modules.webp, this.emscriptenOptions());
    this.webpReady = true;
  }

  /**
   * Decodes for a model input of `target` x `target`: a JPEG at the DCT scale
   * sharp's resize would use (never below the target), a PNG streamed into
   * the resize's box pre-shrink for that size, a WebP whole.
   * Any decoder failure becomes a 422 with the decoder's reason.
   */
  async decode(format: ImageFormat, bytes: Uint8Array, expected: Size, target: number): Promise<DecodedImage> {
    if (format === 'jpeg') return this.decodeJpeg(bytes, expected, target);
    if (format === 'png') return this.decodePng(bytes, expected, target);
    // The jsquash decoders take an ArrayBuffer of exactly the file.
    const buffer =
      bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? (bytes.buffer as ArrayBuffer)
        : (bytes.slice().buffer as ArrayBuffer);
    this.messages = [];
    let img: { data: Uint8ClampedArray | Uint8Array; width: number; height: number };
    try {
      if (!this.webpReady) this.resetWebp();
      img = await decodeWebpWasm(buffer);
    } catch (e) {
      // A failed emscripten call may leave its instance in a bad state: start afresh.
      this.webpReady = false;
      const why = this.messages.find((m) => m.trim()) ?? (e instanceof Error ? e.message : 'decoder error');
      throw undecodable(format, why.trim());
    }
    if (img.width * img.height > RESET_AFTER_PIXELS) this.webpReady = false;
    checkSize(format, img, expected, img.width * img.height * 4);
    return { data: img.data, width: img.width, height: img.height, channels: 4, scale: 1 };
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

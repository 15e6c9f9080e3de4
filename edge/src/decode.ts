/**
 * Image decoders that run in workerd and Node alike: the @jsquash WebAssembly
 * builds of mozjpeg, the Rust png crate and libwebp. Their .wasm files are
 * handed in precompiled (workerd forbids compiling wasm at run time; the
 * Worker imports them as modules, Node compiles them once at start).
 */
import decodeJpegWasm, { init as initJpegRaw } from '@jsquash/jpeg/decode.js';
import { decode as decodePngWasm, init as initPngRaw } from '@jsquash/png/decode.js';
import decodeWebpWasm, { init as initWebpRaw } from '@jsquash/webp/decode.js';
import { ApiError } from './errors.ts';
import type { ImageFormat } from './image-header.ts';

export interface DecoderModules {
  jpeg: WebAssembly.Module;
  png: WebAssembly.Module;
  webp: WebAssembly.Module;
}

export interface DecodedImage {
  /** RGBA, 8 bits per channel, row-major. */
  data: Uint8ClampedArray | Uint8Array;
  width: number;
  height: number;
}

type EmscriptenInit = (module: WebAssembly.Module, overrides?: Record<string, unknown>) => Promise<void>;
const initJpeg = initJpegRaw as unknown as EmscriptenInit;
const initWebp = initWebpRaw as unknown as EmscriptenInit;

/** The decoders build ImageData, which Node (and possibly a runtime) lacks. */
function ensureImageData(): void {
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
  private pngReady: Promise<unknown> | null = null;
  private jpegReady = false;
  private webpReady = false;
  private messages: string[] = [];

  constructor(modules: DecoderModules) {
    this.modules = modules;
    ensureImageData();
  }

  private emscriptenOptions(): Record<string, unknown> {
    const sink = (text: string) => {
      if (this.messages.length < 20) this.messages.push(String(text));
    };
    return { print: sink, printErr: sink };
  }

  private resetJpeg(): void {
    void initJpeg(this.modules.jpeg, this.emscriptenOptions());
    this.jpegReady = true;
  }

  private resetWebp(): void {
    void initWebp(this.modules.webp, this.emscriptenOptions());
    this.webpReady = true;
  }

  /** Decodes to RGBA; any decoder failure becomes a 422 with the decoder's reason. */
  async decode(format: ImageFormat, bytes: Uint8Array, expected: { width: number; height: number }): Promise<DecodedImage> {
    // The decoders take an ArrayBuffer of exactly the file.
    const buffer = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : (bytes.slice().buffer as ArrayBuffer);
    this.messages = [];
    let img: DecodedImage;
    try {
      if (format === 'jpeg') {
        if (!this.jpegReady) this.resetJpeg();
        img = await decodeJpegWasm(buffer);
      } else if (format === 'webp') {
        if (!this.webpReady) this.resetWebp();
        img = await decodeWebpWasm(buffer);
      } else {
        this.pngReady ??= initPngRaw(this.modules.png);
        await this.pngReady;
        img = await decodePngWasm(buffer);
      }
    } catch (e) {
      // A failed emscripten call may leave its instance in a bad state: start afresh.
      if (format === 'jpeg') this.jpegReady = false;
      if (format === 'webp') this.webpReady = false;
      const why = this.messages.find((m) => m.trim()) ?? (e instanceof Error ? e.message : 'decoder error');
      throw new ApiError('undecodable_image', `the ${format.toUpperCase()} image could not be decoded: ${why.trim()}`);
    }
    if (img.width * img.height > RESET_AFTER_PIXELS) {
      if (format === 'jpeg') this.jpegReady = false;
      if (format === 'webp') this.webpReady = false;
    }
    if (img.width !== expected.width || img.height !== expected.height || img.data.length !== img.width * img.height * 4) {
      throw new ApiError('undecodable_image', `the ${format.toUpperCase()} image decoded to ${img.width}x${img.height}, but its header says ${expected.width}x${expected.height}`);
    }
    return img;
  }
}

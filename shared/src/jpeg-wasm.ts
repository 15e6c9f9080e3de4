/**
 * The JPEG decoder every runtime shares: libjpeg-turbo built to WebAssembly
 * (shared/wasm/jpeg-decode.wasm, see build.sh there), decoding straight to a
 * reduced scale in the DCT domain, as libvips does for the trainer's sharp
 * resize ("shrink-on-load"). The caller hands in the compiled module: workerd
 * imports .wasm files as modules, Node and browsers compile the bytes once.
 *
 * An instance that failed mid-decode is dropped (libjpeg's error exit leaves
 * its heap half-used) and so is one whose memory grew past a big decode
 * (wasm-instance.ts).
 */
import { ResettableWasmInstance, asError, type StandaloneExports } from './wasm-instance.ts';

/** 8-bit RGB pixels, row-major. */
export interface RgbPixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3;
}

export interface JpegInfo {
  width: number;
  height: number;
  /** libjpeg's J_COLOR_SPACE of the file: 1 grey, 2 RGB, 3 YCbCr, 4 CMYK, 5 YCCK. */
  colorSpace: number;
  progressive: boolean;
  /** An Adobe APP14 marker (its CMYK is stored inverted). */
  adobe: boolean;
}

/** The scales libjpeg decodes at: 1/1, 1/2, 1/4, 1/8. */
export type JpegScale = 1 | 2 | 4 | 8;

/**
 * The DCT scale sharp's resize(outW, outH, { fit: 'fill' }) decodes a JPEG at
 * (its fastShrinkOnLoad rule): the largest of 8, 4, 2 not above the smaller
 * reduction factor, halved when the factor is exactly that integer (libjpeg's
 * rounding). The result is never smaller than the output.
 */
export function jpegShrinkOnLoad(width: number, height: number, outW: number, outH: number): JpegScale {
  const shrink = Math.min(width / outW, height / outH);
  let s: JpegScale = shrink >= 8 ? 8 : shrink >= 4 ? 4 : shrink >= 2 ? 2 : 1;
  if (s > 1 && Math.trunc(shrink) === s) s = (s / 2) as JpegScale;
  return s;
}

/**
 * How the last decode read the entropy-coded data: `dc-scan` by the decoder
 * for blocks output one pixel each (shared/wasm/jpeg-dc-scan.c), `libjpeg` by
 * libjpeg's own, `fell-back` by the first and then, on data it leaves to
 * libjpeg, again by libjpeg. The pixels are the same.
 */
export type JpegEntropyPath = 'dc-scan' | 'libjpeg' | 'fell-back';
const ENTROPY_PATHS: JpegEntropyPath[] = ['libjpeg', 'dc-scan', 'fell-back'];

export interface JpegDecodeOptions {
  /** false: libjpeg's own entropy decoder only (for comparisons). Default true. */
  dcScan?: boolean;
}

/** A libjpeg failure: `message` is libjpeg's own text. */
export class JpegDecodeError extends Error {}

interface Exports extends StandaloneExports {
  jd_info(): number;
  jd_alloc(n: number): number;
  jd_free(p: number): void;
  jd_header(src: number, len: number): number;
  jd_decode(src: number, len: number, denom: number, flags: number): number;
}

/** jd_decode's flag for libjpeg's own entropy decoder. */
const JD_NO_DC_SCAN = 1;

function jpegImports(memory: () => WebAssembly.Memory): WebAssembly.Imports {
  const text = (p: number) => {
    const b = new Uint8Array(memory().buffer, p);
    const end = b.indexOf(0);
    return new TextDecoder().decode(b.subarray(0, end < 0 ? 200 : end));
  };
  return {
    env: {
      jd_fail: (p: number) => {
        throw new JpegDecodeError(text(p));
      },
      emscripten_notify_memory_growth: () => {},
    },
    wasi_snapshot_preview1: {
      proc_exit: (code: number) => {
        throw new JpegDecodeError(`the JPEG decoder exited (${code})`);
      },
      // No environment: libjpeg asks only for JPEGMEM.
      environ_sizes_get: (countPtr: number, sizePtr: number) => {
        new DataView(memory().buffer).setUint32(countPtr, 0, true);
        new DataView(memory().buffer).setUint32(sizePtr, 0, true);
        return 0;
      },
      environ_get: () => 0,
    },
  };
}

export class WasmJpegDecoder {
  // A wasm trap (out of memory, unreachable) reads as a decode failure too.
  private readonly wasm: ResettableWasmInstance<Exports>;
  /** How the last successful decode read the entropy-coded data (null before one). */
  lastEntropyPath: JpegEntropyPath | null = null;

  constructor(module: WebAssembly.Module) {
    this.wasm = new ResettableWasmInstance<Exports>(module, jpegImports, (e) => asError(JpegDecodeError, e));
  }

  /** The largest this decoder's wasm memory has been (null before the first use). */
  get peakMemoryBytes(): number | null {
    return this.wasm.peakMemoryBytes;
  }

  /** Runs `fn` with the file copied into wasm memory; a failure drops the instance. */
  private withFile<T>(bytes: Uint8Array, fn: (wasmExports: Exports, src: number) => T): Promise<T> {
    return this.wasm.run((wasmExports) => {
      const src = wasmExports.jd_alloc(bytes.length);
      if (!src) throw new JpegDecodeError('out of memory for the file');
      new Uint8Array(wasmExports.memory.buffer, src, bytes.length).set(bytes);
      const out = fn(wasmExports, src);
      wasmExports.jd_free(src);
      return out;
    });
  }

  private static info(wasmExports: Exports): JpegInfo & { warnings: number; entropyPath: JpegEntropyPath } {
    const i = new Uint32Array(wasmExports.memory.buffer, wasmExports.jd_info(), 7);
    const [width, height, colorSpace, progressive, warnings, adobe, path] = i;
    return {
      width,
      height,
      colorSpace,
      progressive: progressive === 1,
      warnings,
      adobe: adobe === 1,
      entropyPath: ENTROPY_PATHS[path],
    };
  }

  /** The stored size and colour space, from the headers only. */
  async header(bytes: Uint8Array): Promise<JpegInfo> {
    return this.withFile(bytes, (wasmExports, src) => {
      wasmExports.jd_header(src, bytes.length);
      const { warnings: _, entropyPath: __, ...info } = WasmJpegDecoder.info(wasmExports);
      return info;
    });
  }

  /** Decodes at 1/scale to RGB (grey replicated, CMYK and YCCK converted as libvips does). */
  async decode(bytes: Uint8Array, scale: JpegScale = 1, options: JpegDecodeOptions = {}): Promise<RgbPixels> {
    const decodeWith = (flags: number) =>
      this.withFile(bytes, (wasmExports, src) => {
        const p = wasmExports.jd_decode(src, bytes.length, scale, flags);
        const { width, height, entropyPath } = WasmJpegDecoder.info(wasmExports);
        if (!p) return null;
        this.lastEntropyPath = entropyPath;
        const data = new Uint8Array(wasmExports.memory.buffer, p, width * height * 3).slice();
        wasmExports.jd_free(p);
        return { data, width, height, channels: 3 as const };
      });
    const pixels = await decodeWith(options.dcScan === false ? JD_NO_DC_SCAN : 0);
    if (pixels) return pixels;
    // The DC scan met data it leaves to libjpeg, after changing its copy of the file: libjpeg decodes a fresh one.
    const again = await decodeWith(JD_NO_DC_SCAN);
    if (!again) throw new JpegDecodeError('the JPEG decoder returned no image');
    this.lastEntropyPath = 'fell-back';
    return again;
  }
}

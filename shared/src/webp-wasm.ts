/**
 * The WebP decoder every runtime shares: libwebp built to WebAssembly
 * (shared/wasm/webp-decode.wasm, see build-webp.sh there), decoding straight
 * to a reduced size through libwebp's own rescaler, as libvips does for the
 * trainer's sharp resize ("shrink-on-load" for WebP is a scale, not a power
 * of two). The caller hands in the compiled module: workerd imports .wasm
 * files as modules, Node and browsers compile the bytes once. The instance is
 * kept and dropped as wasm-instance.ts says.
 */
import { ResettableWasmInstance, asError, type StandaloneExports } from './wasm-instance.ts';

/** 8-bit RGBA pixels (not premultiplied), row-major. */
export interface RgbaPixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 4;
}

/**
 * The size sharp's resize(outW, outH, { fit: 'fill' }) reads a WebP at: the
 * stored size times 1/shrink, rounded, where shrink is the smaller reduction
 * factor; the stored size when that factor is not above 1.
 */
export function webpShrinkOnLoad(
  width: number,
  height: number,
  outW: number,
  outH: number,
): { width: number; height: number } {
  const shrink = Math.min(width / outW, height / outH);
  if (shrink <= 1) return { width, height };
  const scale = 1 / shrink;
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** A libwebp failure: `message` names libwebp's status. */
export class WebpDecodeError extends Error {}

/** libwebp's VP8StatusCode, in order. */
const STATUS = [
  'ok',
  'out of memory',
  'invalid parameter',
  'bitstream error',
  'unsupported feature',
  'suspended',
  'user abort',
  'not enough data',
];

interface Exports extends StandaloneExports {
  wd_info(): number;
  wd_alloc(n: number): number;
  wd_free(p: number): void;
  wd_decode(src: number, len: number, width: number, height: number): number;
}

function webpImports(memory: () => WebAssembly.Memory): WebAssembly.Imports {
  return {
    env: { emscripten_notify_memory_growth: () => {} },
    wasi_snapshot_preview1: {
      proc_exit: (code: number) => {
        throw new WebpDecodeError(`the WebP decoder exited (${code})`);
      },
      // libwebp prints nothing on the decode path; any write is counted as done and dropped.
      fd_write: (_fd: number, iov: number, iovcnt: number, written: number) => {
        const v = new DataView(memory().buffer);
        let n = 0;
        for (let i = 0; i < iovcnt; i++) n += v.getUint32(iov + 8 * i + 4, true);
        v.setUint32(written, n, true);
        return 0;
      },
      fd_close: () => 0,
      fd_seek: () => 70,
    },
  };
}

export class WasmWebpDecoder {
  // A trap leaves the heap in an unknown state: the instance is dropped and the next call starts afresh.
  private readonly wasm: ResettableWasmInstance<Exports>;

  constructor(module: WebAssembly.Module) {
    this.wasm = new ResettableWasmInstance<Exports>(module, webpImports, (e) => asError(WebpDecodeError, e));
  }

  /** The largest this decoder's wasm memory has been (null before the first use). */
  get peakMemoryBytes(): number | null {
    return this.wasm.peakMemoryBytes;
  }

  /**
   * Decodes to width x height RGBA (the stored size, or smaller through
   * libwebp's rescaler); `stored` is the size the bitstream declares.
   */
  async decode(
    bytes: Uint8Array,
    width: number,
    height: number,
  ): Promise<RgbaPixels & { stored: { width: number; height: number } }> {
    return this.wasm.run((ex) => {
      const src = ex.wd_alloc(bytes.length);
      if (!src) throw new WebpDecodeError('out of memory for the file');
      new Uint8Array(ex.memory.buffer, src, bytes.length).set(bytes);
      const p = ex.wd_decode(src, bytes.length, width, height);
      ex.wd_free(src);
      if (!p) {
        const status = new Uint32Array(ex.memory.buffer, ex.wd_info(), 4)[3];
        throw new WebpDecodeError(`libwebp: ${STATUS[status] ?? `status ${status}`}`);
      }
      const info = new Uint32Array(ex.memory.buffer, ex.wd_info(), 4);
      const stored = { width: info[0], height: info[1] };
      const data = new Uint8Array(ex.memory.buffer, p, width * height * 4).slice();
      ex.wd_free(p);
      return { data, width, height, channels: 4 as const, stored };
    });
  }
}

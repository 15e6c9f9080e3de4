/**
 * One instance of a standalone (emscripten) wasm decoder, shared by the JPEG
 * and WebP wrappers: made when first needed, dropped after a failure (the C
 * heap may be left half-used) and after a call that grew its memory past a
 * few megabytes (wasm memory never shrinks, so only a new instance gives it
 * back). Not exported from the package: each decoder wraps it.
 */

/** What every standalone emscripten module exports. */
export interface StandaloneExports {
  memory: WebAssembly.Memory;
  _initialize(): void;
}

/**
 * Past this much wasm memory a finished call drops the instance. A baseline
 * 12 MP JPEG or a 4K WebP stays below it; a progressive JPEG (its whole
 * coefficient array) goes above.
 */
const RESET_ABOVE_BYTES = 16 * 1024 * 1024;

export class ResettableWasmInstance<E extends StandaloneExports> {
  private exports: E | null = null;
  /** The largest the instances' memory has been (null before the first call). */
  peakMemoryBytes: number | null = null;

  private readonly module: WebAssembly.Module;
  private readonly imports: (memory: () => WebAssembly.Memory) => WebAssembly.Imports;
  private readonly toError: (e: unknown) => Error;

  /**
   * @param imports the module's imports; `memory` gives the live instance's memory once it exists
   * @param toError turns anything a call threw (a trap included) into the decoder's own error
   */
  constructor(
    module: WebAssembly.Module,
    imports: (memory: () => WebAssembly.Memory) => WebAssembly.Imports,
    toError: (e: unknown) => Error,
  ) {
    this.module = module;
    this.imports = imports;
    this.toError = toError;
  }

  private async instance(): Promise<E> {
    if (this.exports) return this.exports;
    let memory: WebAssembly.Memory | null = null;
    const inst = await WebAssembly.instantiate(
      this.module,
      this.imports(() => memory!),
    );
    const wasmExports = inst.exports as unknown as E;
    memory = wasmExports.memory;
    wasmExports._initialize();
    this.exports = wasmExports;
    return wasmExports;
  }

  /** Runs `fn` on the instance; a failure drops it and is rethrown through `toError`. */
  async run<T>(fn: (wasmExports: E) => T): Promise<T> {
    const wasmExports = await this.instance();
    try {
      const out = fn(wasmExports);
      const used = wasmExports.memory.buffer.byteLength;
      this.peakMemoryBytes = Math.max(this.peakMemoryBytes ?? 0, used);
      if (used > RESET_ABOVE_BYTES) this.exports = null;
      return out;
    } catch (e) {
      this.exports = null;
      throw this.toError(e);
    }
  }
}

/** `e` as the error class `Kind`: itself when it already is one, else its message in one. */
export function asError<T extends Error>(Kind: new (message: string) => T, e: unknown): T {
  if (e instanceof Kind) return e;
  return new Kind(e instanceof Error ? e.message : String(e));
}

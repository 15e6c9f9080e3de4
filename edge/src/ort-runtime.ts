/**
 * onnxruntime-web's WebAssembly runtime, started from a precompiled module.
 *
 * workerd refuses to compile wasm at run time, so the .wasm must arrive as a
 * WebAssembly.Module (a Worker module import; Node compiles the file once).
 * ort-web has no option for a Module: it accepts the wasm *bytes*
 * (env.wasm.wasmBinary) and passes them to WebAssembly.instantiate. So it gets
 * a placeholder buffer, and WebAssembly.instantiate is wrapped, for the
 * duration of the start-up only, to instantiate the precompiled module when
 * it sees that buffer. One thread (no SharedArrayBuffer workers in Workers),
 * no proxy worker.
 */
import * as ort from 'onnxruntime-web/wasm';

let started: Promise<void> | null = null;
/** The runtime's linear memory, once instantiated (reported by /healthz: the isolate limit counts it). */
let wasmMemory: WebAssembly.Memory | null = null;

/** Bytes of ort-web's wasm linear memory in this isolate, or null before the first session. */
export function ortWasmMemoryBytes(): number | null {
  return wasmMemory ? wasmMemory.buffer.byteLength : null;
}

function withPrecompiledWasm(module: WebAssembly.Module, placeholder: ArrayBuffer): () => void {
  const wasm = WebAssembly as { instantiate: (...args: unknown[]) => Promise<unknown> };
  const original = wasm.instantiate;
  wasm.instantiate = (source: unknown, imports?: unknown) => {
    const isPlaceholder = source === placeholder || (ArrayBuffer.isView(source) && source.buffer === placeholder);
    if (!isPlaceholder) return original.apply(WebAssembly, [source, imports]);
    return (original.apply(WebAssembly, [module, imports]) as Promise<WebAssembly.Instance>).then((instance) => {
      // Emscripten either exports its memory or imports it (under some module name).
      const imported = Object.values((imports ?? {}) as Record<string, Record<string, unknown>>).flatMap((m) =>
        m && typeof m === 'object' ? Object.values(m) : [],
      );
      wasmMemory =
        ([...Object.values(instance.exports), ...imported].find((e) => e instanceof WebAssembly.Memory) as
          | WebAssembly.Memory
          | undefined) ?? null;
      return { instance, module };
    });
  };
  return () => {
    wasm.instantiate = original;
  };
}

/**
 * Starts ort-web's runtime once per isolate (later calls share the first).
 * The first session creation is what actually instantiates the wasm.
 */
export function startOrt(_module: WebAssembly.Module): Promise<void> {
  started ??= (async () => {
    const placeholder = new ArrayBuffer(8);
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmBinary = placeholder;
    ort.env.logLevel = 'error';
  })();
  return started;
}

/** Creates a session on the wasm provider, instantiating the runtime from `module` if this is the first. */
export async function createOrtSession(
  module: WebAssembly.Module,
  model: Uint8Array,
  opts: { freeDimensionOverrides?: Record<string, number> } = {},
): Promise<ort.InferenceSession> {
  await startOrt(module);
  const restore = withPrecompiledWasm(module, ort.env.wasm.wasmBinary as ArrayBuffer);
  try {
    return await ort.InferenceSession.create(model, {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
      ...(opts.freeDimensionOverrides ? { freeDimensionOverrides: opts.freeDimensionOverrides } : {}),
    });
  } finally {
    restore();
  }
}

export { ort };

/**
 * onnxruntime-web (the WebAssembly build the site ships) driven from Node, for
 * tests and benchmarks: the same kernels as in a browser, on the same file.
 *
 * onnxruntime-web and onnxruntime-node share one onnxruntime-common, so both
 * register with one backend registry: 'cpu' resolves to onnxruntime-node
 * (priority 100) and 'wasm' to onnxruntime-web (10). Sessions made here always
 * name the 'wasm' execution provider explicitly, and onnxruntime-node sessions
 * made elsewhere with no provider list keep resolving to the native build.
 *
 * The wasm runtime is configured once per process (ort.env.wasm is read when the
 * first wasm session initialises the module): one thread, no proxy worker, SIMD,
 * and the .wasm binary located next to the package's own dist files.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-web';

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface OrtWebConfig {
  /** wasm threads. Default 1 (a browser page without cross-origin isolation gets one). */
  numThreads?: number;
  /** Default true (fixed-width SIMD, what every current browser runs). */
  simd?: boolean | 'relaxed';
}

export interface WebSessionOptions {
  /** Default 'all'. */
  graphOptimizationLevel?: GraphOptimizationLevel;
  /** Symbolic dimensions fixed at session creation (e.g. { N: 1 }). */
  freeDimensionOverrides?: Record<string, number>;
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
}

let configured: Required<OrtWebConfig> | null = null;

/** The directory holding ort-wasm-simd-threaded.{mjs,wasm} of the installed onnxruntime-web. */
export function ortWebDistDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
}

/**
 * Sets ort.env.wasm before the first wasm session. Later calls must ask for the
 * same settings: the module is initialised once per process.
 */
export function configureOrtWeb(cfg: OrtWebConfig = {}): void {
  const want: Required<OrtWebConfig> = { numThreads: cfg.numThreads ?? 1, simd: cfg.simd ?? true };
  if (configured) {
    if (configured.numThreads !== want.numThreads || configured.simd !== want.simd) {
      throw new Error(
        `onnxruntime-web is already configured (${JSON.stringify(configured)}); it cannot switch to ${JSON.stringify(want)} in this process`,
      );
    }
    return;
  }
  ort.env.wasm.numThreads = want.numThreads;
  ort.env.wasm.proxy = false;
  ort.env.wasm.simd = want.simd;
  // A file URL prefix: in Node the Emscripten loader reads it with fs.
  ort.env.wasm.wasmPaths = pathToFileURL(join(ortWebDistDir(), '/')).href;
  configured = want;
}

/** An onnxruntime-web session on the wasm execution provider. */
export async function createWebSession(bytes: Uint8Array, opts: WebSessionOptions = {}): Promise<ort.InferenceSession> {
  configureOrtWeb();
  return ort.InferenceSession.create(bytes, {
    executionProviders: ['wasm'],
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
    logSeverityLevel: opts.logSeverityLevel ?? 3,
    ...(opts.freeDimensionOverrides ? { freeDimensionOverrides: opts.freeDimensionOverrides } : {}),
  });
}

export interface OutputTensor {
  data: Float32Array;
  dims: number[];
}

/** Runs float32 inputs through a session; float32 outputs (all, or those named) come back as plain copies. */
export async function runFloat(
  session: ort.InferenceSession,
  inputs: Record<string, { data: Float32Array; dims: readonly number[] }>,
  outputs?: string[],
): Promise<Record<string, OutputTensor>> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) feeds[name] = new ort.Tensor('float32', t.data, t.dims);
  const res = outputs ? await session.run(feeds, outputs) : await session.run(feeds);
  const out: Record<string, OutputTensor> = {};
  for (const [name, t] of Object.entries(res)) {
    if (t.type !== 'float32') throw new Error(`onnxruntime-web: output ${name} is ${t.type}, expected float32`);
    out[name] = { data: Float32Array.from(t.data as Float32Array), dims: [...t.dims] };
    t.dispose();
  }
  return out;
}

/** One-shot: create a wasm session, run once, release. */
export async function runOrtWeb(
  bytes: Uint8Array,
  inputs: Record<string, { data: Float32Array; dims: readonly number[] }>,
  opts: WebSessionOptions & { outputs?: string[] } = {},
): Promise<Record<string, OutputTensor>> {
  const s = await createWebSession(bytes, opts);
  try {
    return await runFloat(s, inputs, opts.outputs);
  } finally {
    await s.release();
  }
}

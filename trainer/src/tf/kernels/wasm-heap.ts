/**
 * Direct access to tfjs-backend-wasm tensors for kernels written in TypeScript.
 *
 * The wasm backend keeps every tensor in the module's linear memory; a kernel
 * can allocate outputs with makeOutput and read/write them through views on
 * the heap. Views are invalidated whenever the heap grows (any allocation), so
 * callers must allocate first and take views afterwards.
 */
import { getKernel } from '@tensorflow/tfjs-core';
import type { DataType, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

/** The parts of BackendWasm these kernels rely on (its public d.ts types `wasm` loosely). */
export interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } };
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

export function asWasm(backend: unknown): WasmBackendLike {
  const b = backend as Partial<WasmBackendLike>;
  if (!b || typeof b.makeOutput !== 'function' || !b.wasm || !b.dataIdMap) {
    throw new Error('wasm-grad-kernels: expected the tfjs-backend-wasm backend');
  }
  return b as WasmBackendLike;
}

function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Float32 view of a tensor's data. Valid only until the next allocation. */
export function f32(backend: WasmBackendLike, t: TensorInfo): Float32Array {
  const { memoryOffset } = backend.dataIdMap.get(t.dataId);
  return new Float32Array(backend.wasm.HEAPU8.buffer, memoryOffset, sizeOf(t.shape));
}

/** Int32 view of a tensor's data. Valid only until the next allocation. */
export function i32(backend: WasmBackendLike, t: TensorInfo): Int32Array {
  const { memoryOffset } = backend.dataIdMap.get(t.dataId);
  return new Int32Array(backend.wasm.HEAPU8.buffer, memoryOffset, sizeOf(t.shape));
}

export function alloc(backend: WasmBackendLike, shape: number[], dtype: DataType = 'float32'): TensorInfo {
  return backend.makeOutput(shape, dtype);
}

export function free(backend: WasmBackendLike, ...ts: TensorInfo[]): void {
  for (const t of ts) backend.disposeData(t.dataId);
}

/** The same data seen with another shape (no copy; the caller keeps ownership). */
export function view(t: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

const kernelFns = new Map<string, KernelFunc>();

/** Calls another kernel registered for wasm (e.g. its XNNPACK Conv2D) directly on TensorInfos. */
export function callKernel(
  backend: WasmBackendLike,
  name: string,
  inputs: Record<string, TensorInfo>,
  attrs: Record<string, unknown>,
): TensorInfo {
  let fn = kernelFns.get(name);
  if (!fn) {
    const k = getKernel(name, 'wasm');
    if (!k) throw new Error(`wasm-grad-kernels: ${name} is not registered for wasm`);
    fn = k.kernelFunc;
    kernelFns.set(name, fn);
  }
  return fn({ inputs, backend: backend as unknown as object, attrs: attrs as NamedAttrMap }) as TensorInfo;
}

/**
 * out[M,N] = a[M,K] · b[K,N] through the backend's own BatchMatMul kernel.
 * With batch 1 and no transposes that kernel runs XNNPACK's fully-connected
 * operator (SIMD GEMM); any transpose falls back to a scalar C++ loop, so
 * callers lay their operands out to avoid transposes. XNNPACK caches the
 * packed `b` under b's tensor id until b is disposed: never rewrite the data
 * of a tensor after using it as `b`.
 */
export function matMul(backend: WasmBackendLike, a: TensorInfo, b: TensorInfo): TensorInfo {
  const [m, k1] = a.shape.slice(-2);
  const [k2, n] = b.shape.slice(-2);
  if (k1 !== k2) throw new Error(`matMul: inner dims ${k1} vs ${k2}`);
  return callKernel(
    backend,
    'BatchMatMul',
    { a: view(a, [1, m, k1]), b: view(b, [1, k2, n]) },
    { transposeA: false, transposeB: false },
  );
}

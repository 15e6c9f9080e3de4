/**
 * Replacing a stock wasm kernel with a faster path that handles the common
 * cases and hands everything else back to the stock kernel.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

export type KernelArgs = Parameters<KernelFunc>[0];
/** Returns null when the case is not handled, so the stock kernel runs instead. */
export type FastPath = (args: KernelArgs) => TensorInfo | null;

export interface Override {
  kernelName: string;
  fast: FastPath;
}

/**
 * The stock kernel's setupFunc (its cwrap bindings) only runs for kernels
 * registered when the backend initialises; once replaced, ours runs it on
 * first delegation instead, once per backend instance.
 */
function setupOnce(stock: KernelConfig, backend: object, done: WeakSet<object>): void {
  if (done.has(backend)) return;
  stock.setupFunc?.(backend);
  done.add(backend);
}

export function makeOverride(o: Override, stock: KernelConfig | undefined): KernelConfig {
  const setUp = new WeakSet<object>();
  const kernelFunc: KernelFunc = (args) => {
    const out = o.fast(args);
    if (out) return out;
    if (!stock) throw new Error(`${o.kernelName} (wasm): case not supported`);
    setupOnce(stock, args.backend, setUp);
    return stock.kernelFunc(args);
  };
  return { kernelName: o.kernelName, backendName: 'wasm', kernelFunc };
}

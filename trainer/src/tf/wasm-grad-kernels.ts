/**
 * Makes tfjs-backend-wasm (4.22) fit for training:
 *  - registers the kernels it lacks that gradients need (conv2d's and
 *    depthwiseConv2d's backprops, and UnsortedSegmentSum for gather's);
 *  - replaces stock kernels that are slow on training paths with fast paths
 *    that hand uncommon cases back to the stock kernel.
 *
 * Nothing here uses setupFunc, so registering works before or after the wasm
 * backend has been initialised.
 */
import { getKernel, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { conv2DBackpropFilterConfig } from './kernels/conv2d-backprop-filter.ts';
import { compareOverrides } from './kernels/compare.ts';
import { conv2DBackpropInputOverride } from './kernels/conv2d-backprop-input.ts';
import { depthwiseBackpropFilterConfig } from './kernels/depthwise-backprop-filter.ts';
import { depthwiseBackpropInputConfig } from './kernels/depthwise-backprop-input.ts';
import { makeOverride } from './kernels/override.ts';
import type { Override } from './kernels/override.ts';
import { meanOverride, sumOverride } from './kernels/reduce.ts';
import { tileOverride } from './kernels/tile.ts';
import { unsortedSegmentSumConfig } from './kernels/unsorted-segment-sum.ts';

/** Kernels absent from tfjs-backend-wasm 4.22.0 that training needs. */
export const MISSING_WASM_KERNELS: readonly KernelConfig[] = [
  conv2DBackpropFilterConfig,
  depthwiseBackpropFilterConfig,
  depthwiseBackpropInputConfig,
  unsortedSegmentSumConfig,
];

/**
 * Stock kernels replaced for speed (ms per call, batch-32 training shapes):
 * Conv2DBackpropInput (scalar C++ loop, 5–10× slower than ours), Tile (~60 ns
 * per element; batchNorm's gradient tiles full activations), Sum and Mean
 * over leading/middle axes (they transpose first, ~15 ns per element),
 * comparisons against a scalar or same-shape tensor (generic broadcast path,
 * ~5 ns per element; activation gradients use them).
 */
export const REPLACED_WASM_KERNELS: readonly Override[] = [
  conv2DBackpropInputOverride,
  tileOverride,
  sumOverride,
  meanOverride,
  ...compareOverrides,
];

let registered = false;

/** Idempotent. Leaves kernels someone else already registered for the missing names alone. */
export function registerWasmGradKernels(): void {
  if (registered) return;
  registered = true;
  for (const config of MISSING_WASM_KERNELS) {
    if (!getKernel(config.kernelName, 'wasm')) registerKernel(config);
  }
  for (const o of REPLACED_WASM_KERNELS) {
    const stock = getKernel(o.kernelName, 'wasm');
    // Unregister first: registerKernel would otherwise warn about the override.
    if (stock) unregisterKernel(o.kernelName, 'wasm');
    registerKernel(makeOverride(o, stock ? { ...stock } : undefined));
  }
}

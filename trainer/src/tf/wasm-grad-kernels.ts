/**
 * Registers the kernels tfjs-backend-wasm lacks for training (the gradients of
 * conv2d, depthwiseConv2d and gather), plus a faster Conv2DBackpropInput.
 *
 * The kernels take no setupFunc, so registering works before or after the
 * wasm backend has been initialised.
 */
import { getKernel, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { conv2DBackpropFilterConfig } from './kernels/conv2d-backprop-filter.ts';
import { conv2DBackpropInputConfig } from './kernels/conv2d-backprop-input.ts';
import { depthwiseBackpropFilterConfig } from './kernels/depthwise-backprop-filter.ts';
import { depthwiseBackpropInputConfig } from './kernels/depthwise-backprop-input.ts';
import { unsortedSegmentSumConfig } from './kernels/unsorted-segment-sum.ts';

/** Kernels absent from tfjs-backend-wasm 4.22.0 that training needs. */
export const MISSING_WASM_KERNELS: readonly KernelConfig[] = [
  conv2DBackpropFilterConfig,
  depthwiseBackpropFilterConfig,
  depthwiseBackpropInputConfig,
  unsortedSegmentSumConfig,
];

/** Kernels the wasm backend has, replaced because ours are much faster. */
export const REPLACED_WASM_KERNELS: readonly KernelConfig[] = [conv2DBackpropInputConfig];

let registered = false;

/** Idempotent. Leaves kernels someone else already registered for the missing names alone. */
export function registerWasmGradKernels(): void {
  if (registered) return;
  registered = true;
  for (const config of MISSING_WASM_KERNELS) {
    if (!getKernel(config.kernelName, 'wasm')) registerKernel(config);
  }
  for (const config of REPLACED_WASM_KERNELS) {
    // Unregister first: registerKernel would otherwise warn about the override.
    if (getKernel(config.kernelName, 'wasm')) unregisterKernel(config.kernelName, 'wasm');
    registerKernel(config);
  }
}

/**
 * UnsortedSegmentSum for the wasm backend (it ships none); tf.gather's
 * gradient needs it. out[s, ...] = Σ x[i, ...] over i with segmentIds[i] = s;
 * ids outside [0, numSegments) are dropped, as in TensorFlow.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { alloc, asWasm, f32, i32 } from './wasm-heap.ts';

const unsortedSegmentSum: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasmBackend = asWasm(backend);
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const { numSegments } = attrs as unknown as { numSegments: number };
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum (wasm): unsupported dtype ${x.dtype}`);
  }
  const inner = x.shape.slice(segmentIds.shape.length);
  let width = 1;
  for (const d of inner) width *= d;

  const out = alloc(wasmBackend, [numSegments, ...inner], x.dtype);
  const ids = i32(wasmBackend, segmentIds);
  const xs = x.dtype === 'float32' ? f32(wasmBackend, x) : i32(wasmBackend, x);
  const o = x.dtype === 'float32' ? f32(wasmBackend, out) : i32(wasmBackend, out);
  o.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * width;
    const dst = s * width;
    for (let j = 0; j < width; j++) o[dst + j] += xs[src + j];
  }
  return out;
};

export const unsortedSegmentSumConfig: KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum,
};

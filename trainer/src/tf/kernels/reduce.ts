/**
 * Sum and Mean over a block of axes that are neither all nor innermost, e.g.
 * [0,1,2] of NHWC (bias / batch-norm gradients, batch statistics) or [1,2]
 * (global average pooling). The stock kernels first transpose the reduced
 * axes innermost, and the wasm Transpose costs ~15 ns per element; here it
 * is one pass over the data, accumulating rows in float64.
 * Other cases (innermost axes, full reductions, non-float32) go to stock.
 */
import { util } from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { KernelArgs, Override } from './override.ts';
import { alloc, asWasm, f32 } from './wasm-heap.ts';

function reduce({ inputs, backend, attrs }: KernelArgs, mean: boolean): TensorInfo | null {
  const { x } = inputs as { x: TensorInfo };
  const { axis, keepDims } = attrs as unknown as { axis: number | number[]; keepDims: boolean };
  if (x.dtype !== 'float32') return null;
  const shape = x.shape;
  const axes = [...util.parseAxisParam(axis, shape)].sort((a, b) => a - b);
  if (axes.length === 0) return null;
  const first = axes[0];
  const last = axes[axes.length - 1];
  // A contiguous block that leaves something inside it: x viewed as [outer, r, inner].
  if (last - first + 1 !== axes.length || last === shape.length - 1) return null;
  const outer = shape.slice(0, first).reduce((a, b) => a * b, 1);
  const r = shape.slice(first, last + 1).reduce((a, b) => a * b, 1);
  const inner = shape.slice(last + 1).reduce((a, b) => a * b, 1);
  if (outer * r * inner === 0) return null;

  const outShape = keepDims
    ? shape.map((d, i) => (i >= first && i <= last ? 1 : d))
    : shape.filter((_, i) => i < first || i > last);
  const wasmBackend = asWasm(backend);
  const out = alloc(wasmBackend, outShape);
  const src = f32(wasmBackend, x);
  const dst = f32(wasmBackend, out);
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    acc.fill(0);
    for (let j = 0, base = o * r * inner; j < r; j++, base += inner) {
      for (let i = 0; i < inner; i++) acc[i] += src[base + i];
    }
    for (let i = 0; i < inner; i++) dst[o * inner + i] = mean ? acc[i] / r : acc[i];
  }
  return out;
}

export const sumOverride: Override = { kernelName: 'Sum', fast: (args) => reduce(args, false) };
export const meanOverride: Override = { kernelName: 'Mean', fast: (args) => reduce(args, true) };

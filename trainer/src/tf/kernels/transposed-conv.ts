/**
 * Backprop-to-input as a forward convolution, so it runs in XNNPACK.
 *
 * dx[i] = Σ_k dy[(i + pt − k)/s] · W[k] (terms with a non-integer index
 * vanish) is a stride-1 convolution of dy, zero-upsampled by the stride, with
 * the spatially flipped filter and padding (K−1−pt) before / whatever makes
 * the output H after. Upsampling costs s² in multiply-adds, still far cheaper
 * than scalar loops.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { ConvGeometry } from './conv-geometry.ts';
import { alloc, callKernel, f32, free } from './wasm-heap.ts';
import type { WasmBackendLike } from './wasm-heap.ts';

export interface TransposedPads {
  top: number;
  bottom: number;
  left: number;
  right: number;
  upH: number;
  upW: number;
}

/** Pads of the equivalent forward conv, or null when one would be negative (odd explicit pads). */
export function transposedPads(g: ConvGeometry): TransposedPads | null {
  const upH = (g.outH - 1) * g.strideH + 1;
  const upW = (g.outW - 1) * g.strideW + 1;
  const top = g.kH - 1 - g.padTop;
  const left = g.kW - 1 - g.padLeft;
  const bottom = g.inH - upH + g.kH - 1 - top;
  const right = g.inW - upW + g.kW - 1 - left;
  if (Math.min(top, left, bottom, right) < 0) return null;
  return { top, bottom, left, right, upH, upW };
}

/** dy [B,OH,OW,C] → [B,upH,upW,C] with dy at every stride-th pixel and zeros between. */
function upsample(wasmBackend: WasmBackendLike, dy: TensorInfo, g: ConvGeometry, p: TransposedPads): TensorInfo {
  const c = dy.shape[3];
  const up = alloc(wasmBackend, [g.batch, p.upH, p.upW, c]);
  const src = f32(wasmBackend, dy);
  const dst = f32(wasmBackend, up);
  dst.fill(0);
  for (let b = 0; b < g.batch; b++) {
    for (let oh = 0; oh < g.outH; oh++) {
      let s = (b * g.outH + oh) * g.outW * c;
      let d = (b * p.upH + oh * g.strideH) * p.upW * c;
      for (let ow = 0; ow < g.outW; ow++, s += c, d += g.strideW * c) {
        dst.set(src.subarray(s, s + c), d);
      }
    }
  }
  return up;
}

/**
 * Runs the forward kernel (Conv2D or DepthwiseConv2dNative) of the transposed
 * problem. `flipped` must already be the flipped filter in that kernel's layout.
 */
export function convTransposeViaForward(
  wasmBackend: WasmBackendLike,
  kernel: 'Conv2D' | 'DepthwiseConv2dNative',
  dy: TensorInfo,
  flipped: TensorInfo,
  g: ConvGeometry,
  p: TransposedPads,
): TensorInfo {
  const strided = g.strideH > 1 || g.strideW > 1;
  const src = strided ? upsample(wasmBackend, dy, g, p) : dy;
  const out = callKernel(
    wasmBackend,
    kernel,
    { x: src, filter: flipped },
    {
      strides: 1,
      dilations: 1,
      pad: [
        [0, 0],
        [p.top, p.bottom],
        [p.left, p.right],
        [0, 0],
      ],
      dataFormat: 'NHWC',
      dimRoundingMode: undefined,
    },
  );
  if (strided) free(wasmBackend, src);
  return out;
}

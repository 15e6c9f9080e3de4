/**
 * DepthwiseConv2dNativeBackpropInput for the wasm backend (it ships none).
 *
 * dx[b,ih,iw,c] = Σ dy[b,oh,ow,c·Q+q] · W[kh,kw,c,q] over the taps that read
 * (ih,iw). Normally computed in XNNPACK as the forward depthwise conv of
 * (zero-upsampled) dy over its C·Q channels with the flipped filter, then
 * summing each channel's Q multiplier outputs. Falls back to a direct scatter
 * loop (channels innermost, contiguous in NHWC) for pads that do not map.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { convGeometry } from './conv-geometry.ts';
import type { ConvAttrs, ConvGeometry } from './conv-geometry.ts';
import { convTransposeViaForward, transposedPads } from './transposed-conv.ts';
import { alloc, asWasm, f32, free } from './wasm-heap.ts';
import type { WasmBackendLike } from './wasm-heap.ts';

/** W[kh,kw,c,q] → F[KH−1−kh, KW−1−kw, c·Q+q, 0]: one depthwise channel per (c, q). */
function flipFilter(wasmBackend: WasmBackendLike, filter: TensorInfo, g: ConvGeometry): TensorInfo {
  const { kH, kW, outC } = g;
  const out = alloc(wasmBackend, [kH, kW, outC, 1]);
  const w = f32(wasmBackend, filter);
  const f = f32(wasmBackend, out);
  for (let kh = 0; kh < kH; kh++) {
    for (let kw = 0; kw < kW; kw++) {
      f.set(w.subarray((kh * kW + kw) * outC, (kh * kW + kw + 1) * outC), ((kH - 1 - kh) * kW + (kW - 1 - kw)) * outC);
    }
  }
  return out;
}

/** [..., C·Q] → [..., C] summing each group of Q consecutive channels. */
function sumMultipliers(wasmBackend: WasmBackendLike, t: TensorInfo, shape: number[], q: number): TensorInfo {
  const out = alloc(wasmBackend, shape);
  const src = f32(wasmBackend, t);
  const dst = f32(wasmBackend, out);
  for (let i = 0, j = 0; i < dst.length; i++) {
    let s = 0;
    for (let k = 0; k < q; k++, j++) s += src[j];
    dst[i] = s;
  }
  return out;
}

const depthwiseBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasmBackend = asWasm(backend);
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
  const g = convGeometry('DepthwiseConv2dNativeBackpropInput', a.inputShape, filter.shape, a, true);
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const q = outC / inC;

  const pads = transposedPads(g);
  if (pads) {
    const flipped = flipFilter(wasmBackend, filter, g);
    const perMultiplier = convTransposeViaForward(wasmBackend, 'DepthwiseConv2dNative', dy, flipped, g, pads);
    free(wasmBackend, flipped);
    if (q === 1) return perMultiplier;
    const dx = sumMultipliers(wasmBackend, perMultiplier, [...a.inputShape], q);
    free(wasmBackend, perMultiplier);
    return dx;
  }

  const out = alloc(wasmBackend, [...a.inputShape]);
  const dx = f32(wasmBackend, out);
  const dys = f32(wasmBackend, dy);
  const w = f32(wasmBackend, filter);
  dx.fill(0);

  for (let b = 0; b < batch; b++) {
    for (let oh = 0; oh < outH; oh++) {
      for (let kh = 0; kh < kH; kh++) {
        const ih = oh * strideH - padTop + kh;
        if (ih < 0 || ih >= inH) continue;
        const xRow = (b * inH + ih) * inW * inC;
        for (let ow = 0; ow < outW; ow++) {
          const d = ((b * outH + oh) * outW + ow) * outC;
          for (let kw = 0; kw < kW; kw++) {
            const iw = ow * strideW - padLeft + kw;
            if (iw < 0 || iw >= inW) continue;
            const xi = xRow + iw * inC;
            const wi = (kh * kW + kw) * outC;
            if (q === 1) {
              for (let c = 0; c < inC; c++) dx[xi + c] += dys[d + c] * w[wi + c];
            } else {
              for (let c = 0; c < inC; c++) {
                const o = c * q;
                let s = 0;
                for (let j = 0; j < q; j++) s += dys[d + o + j] * w[wi + o + j];
                dx[xi + c] += s;
              }
            }
          }
        }
      }
    }
  }
  return out;
};

export const depthwiseBackpropInputConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropInput,
};

/**
 * DepthwiseConv2dNativeBackpropFilter for the wasm backend (it ships none).
 *
 * dW[kh,kw,c,q] = Σ_{b,oh,ow} x[b, oh·s+kh−pt, ow·s+kw−pl, c] · dy[b,oh,ow,c·Q+q]
 *
 * Each channel is an independent correlation, which does not map onto one
 * GEMM, so this is a direct loop with channels innermost (contiguous in NHWC).
 * It costs as many multiply-adds as the forward pass; the small filter-sized
 * accumulator stays in cache and is kept in float64.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { convGeometry } from './conv-geometry.ts';
import type { ConvAttrs } from './conv-geometry.ts';
import { alloc, asWasm, f32 } from './wasm-heap.ts';

const depthwiseBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const wb = asWasm(backend);
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
  const g = convGeometry('DepthwiseConv2dNativeBackpropFilter', x.shape, a.filterShape, a, true);
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const q = outC / inC;

  const out = alloc(wb, [...a.filterShape]);
  const xs = f32(wb, x);
  const dys = f32(wb, dy);
  const acc = new Float64Array(kH * kW * outC);

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
              for (let c = 0; c < inC; c++) acc[wi + c] += xs[xi + c] * dys[d + c];
            } else {
              for (let c = 0; c < inC; c++) {
                const xv = xs[xi + c];
                const o = c * q;
                for (let j = 0; j < q; j++) acc[wi + o + j] += xv * dys[d + o + j];
              }
            }
          }
        }
      }
    }
  }
  f32(wb, out).set(acc);
  return out;
};

export const depthwiseBackpropFilterConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropFilter,
};

/**
 * DepthwiseConv2dNativeBackpropFilter for the wasm backend (it ships none).
 *
 * dW[kh,kw,c,q] = Σ_{b,oh,ow} x[b, oh·s+kh−pt, ow·s+kw−pl, c] · dy[b,oh,ow,c·Q+q]
 *
 * Each channel is an independent correlation, which does not map onto one
 * GEMM (and XNNPACK's depthwise kernels are built for small filters, not the
 * OH×OW "filter" dy would be), so this is a direct loop with channels
 * innermost (contiguous in NHWC). It costs as many multiply-adds as the
 * forward pass; the per-tap accumulator is float64 and stays in cache.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { convGeometry } from './conv-geometry.ts';
import type { ConvAttrs } from './conv-geometry.ts';
import { alloc, asWasm, f32 } from './wasm-heap.ts';

const depthwiseBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasmBackend = asWasm(backend);
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
  const g = convGeometry('DepthwiseConv2dNativeBackpropFilter', x.shape, a.filterShape, a, true);
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const q = outC / inC;

  const out = alloc(wasmBackend, [...a.filterShape]);
  const xs = f32(wasmBackend, x);
  const dys = f32(wasmBackend, dy);
  const dw = f32(wasmBackend, out);
  const acc = new Float64Array(outC);

  // Tap-major: for each (kh, kw) the in-image output range is computed once,
  // so the hot loop has no bounds tests.
  for (let kh = 0; kh < kH; kh++) {
    const ohLo = Math.min(outH, Math.max(0, Math.ceil((padTop - kh) / strideH)));
    const ohHi = Math.max(ohLo, Math.min(outH, Math.floor((inH - 1 + padTop - kh) / strideH) + 1));
    for (let kw = 0; kw < kW; kw++) {
      const owLo = Math.min(outW, Math.max(0, Math.ceil((padLeft - kw) / strideW)));
      const owHi = Math.max(owLo, Math.min(outW, Math.floor((inW - 1 + padLeft - kw) / strideW) + 1));
      const xStep = strideW * inC;
      acc.fill(0);
      for (let b = 0; b < batch; b++) {
        for (let oh = ohLo; oh < ohHi; oh++) {
          const ih = oh * strideH - padTop + kh;
          let xi = ((b * inH + ih) * inW + owLo * strideW - padLeft + kw) * inC;
          let d = ((b * outH + oh) * outW + owLo) * outC;
          for (let ow = owLo; ow < owHi; ow++, xi += xStep, d += outC) {
            if (q === 1) {
              for (let c = 0; c < inC; c++) acc[c] += xs[xi + c] * dys[d + c];
            } else {
              for (let c = 0, o = 0; c < inC; c++) {
                const xv = xs[xi + c];
                for (let j = 0; j < q; j++, o++) acc[o] += xv * dys[d + o];
              }
            }
          }
        }
      }
      dw.set(acc, (kh * kW + kw) * outC);
    }
  }
  return out;
};

export const depthwiseBackpropFilterConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropFilter,
};

/**
 * DepthwiseConv2dNativeBackpropInput for the wasm backend (it ships none).
 *
 * dx[b,ih,iw,c] = Σ dy[b,oh,ow,c·Q+q] · W[kh,kw,c,q] over the taps that read
 * (ih,iw). Written as a scatter from each output pixel, channels innermost, so
 * every access is contiguous in NHWC; same multiply-add count as the forward.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { convGeometry } from './conv-geometry.ts';
import type { ConvAttrs } from './conv-geometry.ts';
import { alloc, asWasm, f32 } from './wasm-heap.ts';

const depthwiseBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const wb = asWasm(backend);
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
  const g = convGeometry('DepthwiseConv2dNativeBackpropInput', a.inputShape, filter.shape, a, true);
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const q = outC / inC;

  const out = alloc(wb, [...a.inputShape]);
  const dx = f32(wb, out);
  const dys = f32(wb, dy);
  const w = f32(wb, filter);
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

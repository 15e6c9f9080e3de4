/**
 * Conv2DBackpropFilter for the wasm backend (it ships none).
 *
 * dW[kh,kw,ci,co] = Σ_{b,oh,ow} x[b, oh·s+kh−pt, ow·s+kw−pl, ci] · dy[b,oh,ow,co]
 *
 * As a GEMM: dW[K,CO] = colsT[K,M] · dy[M,CO] with K = kh·kw·ci and
 * M = b·oh·ow. colsT (the transposed im2col of x) is built in JS; the product
 * runs in XNNPACK through the backend's BatchMatMul. The filter layout
 * [KH,KW,CI,CO] is exactly [K,CO], so no output transpose is needed. Large
 * batches are split into image chunks to bound the scratch buffer.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { convGeometry, imagesPerChunk } from './conv-geometry.ts';
import type { ConvAttrs, ConvGeometry } from './conv-geometry.ts';
import { alloc, asWasm, f32, free, matMul, view } from './wasm-heap.ts';

let planarScratch = new Float32Array(0);

/** Images [b0, b0+nb) of x (NHWC) as planes [C][nb·H·W], in a reused scratch buffer. */
function toPlanar(x: Float32Array, g: ConvGeometry, b0: number, nb: number): Float32Array {
  const pixels = nb * g.inH * g.inW;
  const c = g.inC;
  if (planarScratch.length < pixels * c) planarScratch = new Float32Array(pixels * c);
  const xp = planarScratch;
  for (let p = 0, i = b0 * g.inH * g.inW * c; p < pixels; p++) {
    for (let ci = 0; ci < c; ci++, i++) xp[ci * pixels + p] = x[i];
  }
  return xp;
}

/**
 * Writes colsT[k, m] (K × nb·OH·OW) for images [b0, b0+nb) of x. Going through
 * planar x makes every inner loop a sequential read and a sequential write
 * (2–3× faster than gathering from NHWC with stride C).
 */
function im2colT(x: Float32Array, g: ConvGeometry, b0: number, nb: number, out: Float32Array): void {
  const { inH, inW, inC, outH, outW, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const xp = toPlanar(x, g, b0, nb);
  const mCols = nb * outH * outW;
  for (let kh = 0; kh < kH; kh++) {
    for (let kw = 0; kw < kW; kw++) {
      // Output columns whose tap (kh, kw) lands inside the image; the rest read padding.
      const owLo = Math.min(outW, Math.max(0, Math.ceil((padLeft - kw) / strideW)));
      const owHi = Math.max(owLo, Math.min(outW, Math.floor((inW - 1 + padLeft - kw) / strideW) + 1));
      for (let ci = 0; ci < inC; ci++) {
        let o = ((kh * kW + kw) * inC + ci) * mCols;
        for (let b = 0; b < nb; b++) {
          const plane = (ci * nb + b) * inH * inW;
          for (let oh = 0; oh < outH; oh++, o += outW) {
            const ih = oh * strideH - padTop + kh;
            if (ih < 0 || ih >= inH) {
              out.fill(0, o, o + outW);
              continue;
            }
            const src = plane + ih * inW + kw - padLeft;
            for (let ow = 0; ow < owLo; ow++) out[o + ow] = 0;
            if (strideW === 1) {
              for (let ow = owLo; ow < owHi; ow++) out[o + ow] = xp[src + ow];
            } else {
              for (let ow = owLo; ow < owHi; ow++) out[o + ow] = xp[src + ow * strideW];
            }
            for (let ow = owHi; ow < outW; ow++) out[o + ow] = 0;
          }
        }
      }
    }
  }
}

const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const wb = asWasm(backend);
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
  const g = convGeometry('Conv2DBackpropFilter', x.shape, a.filterShape, a, false);
  const K = g.kH * g.kW * g.inC;
  const pixels = g.outH * g.outW;
  const chunk = imagesPerChunk(g, K);

  if (chunk >= g.batch) {
    const colsT = alloc(wb, [K, g.batch * pixels]);
    im2colT(f32(wb, x), g, 0, g.batch, f32(wb, colsT));
    const out = matMul(wb, colsT, view(dy, [g.batch * pixels, g.outC]));
    free(wb, colsT);
    return view(out, [...a.filterShape]);
  }

  // Several chunks: sum the partial products in float64, then write once.
  const acc = new Float64Array(K * g.outC);
  for (let b0 = 0; b0 < g.batch; b0 += chunk) {
    const nb = Math.min(chunk, g.batch - b0);
    const m = nb * pixels;
    const colsT = alloc(wb, [K, m]);
    // A fresh dy slice per chunk: XNNPACK caches packed weights by tensor id.
    const dyPart = alloc(wb, [m, g.outC]);
    im2colT(f32(wb, x), g, b0, nb, f32(wb, colsT));
    f32(wb, dyPart).set(f32(wb, dy).subarray(b0 * pixels * g.outC, (b0 + nb) * pixels * g.outC));
    const part = matMul(wb, colsT, dyPart);
    const p = f32(wb, part);
    for (let i = 0; i < acc.length; i++) acc[i] += p[i];
    free(wb, colsT, dyPart, part);
  }
  const out = alloc(wb, [...a.filterShape]);
  f32(wb, out).set(acc);
  return out;
};

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter,
};

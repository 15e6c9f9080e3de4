/**
 * Conv2DBackpropInput for the wasm backend, replacing the stock one (a scalar
 * C++ loop, far slower than the forward conv for wide layers). Everything
 * heavy runs in XNNPACK:
 *  - 1×1, stride 1, unpadded: dx = dy · Wᵀ, one GEMM.
 *  - other stride-1 convs: the forward Conv2D of dy with the flipped filter
 *    (unless odd explicit pads make that impossible; then as below).
 *  - strided convs: cols[M,K] = dy[M,CO] · Wᵀ[CO,K] by GEMM, then col2im
 *    scatters cols onto dx in JS (cheaper than convolving a zero-upsampled
 *    dy, which costs stride² more multiply-adds). Split into image chunks.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { convGeometry, imagesPerChunk, isPointwise } from './conv-geometry.ts';
import type { ConvAttrs, ConvGeometry } from './conv-geometry.ts';
import type { KernelArgs, Override } from './override.ts';
import { convTransposeViaForward, transposedPads } from './transposed-conv.ts';
import { alloc, asWasm, f32, free, matMul, view } from './wasm-heap.ts';
import type { WasmBackendLike } from './wasm-heap.ts';

/** Adds cols (nb·OH·OW × K) of images [b0, b0+nb) into dx (NHWC). */
function col2im(cols: Float32Array, g: ConvGeometry, b0: number, nb: number, dx: Float32Array): void {
  const { inH, inW, inC, outH, outW, kH, kW, strideH, strideW, padTop, padLeft } = g;
  const K = kH * kW * inC;
  let c = 0;
  for (let b = 0; b < nb; b++) {
    const dxImg = (b0 + b) * inH * inW * inC;
    for (let oh = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++, c += K) {
        for (let kh = 0; kh < kH; kh++) {
          const ih = oh * strideH - padTop + kh;
          if (ih < 0 || ih >= inH) continue;
          const dxRow = dxImg + ih * inW * inC;
          for (let kw = 0; kw < kW; kw++) {
            const iw = ow * strideW - padLeft + kw;
            if (iw < 0 || iw >= inW) continue;
            const d = dxRow + iw * inC;
            const s = c + (kh * kW + kw) * inC;
            for (let ci = 0; ci < inC; ci++) dx[d + ci] += cols[s + ci];
          }
        }
      }
    }
  }
}

/** W[kh,kw,ci,co] → W'[KH−1−kh, KW−1−kw, co, ci]: the filter of the transposed conv. */
function flipFilter(wasmBackend: WasmBackendLike, filter: TensorInfo, g: ConvGeometry): TensorInfo {
  const { kH, kW, inC, outC } = g;
  const out = alloc(wasmBackend, [kH, kW, outC, inC]);
  const w = f32(wasmBackend, filter);
  const f = f32(wasmBackend, out);
  for (let kh = 0; kh < kH; kh++) {
    for (let kw = 0; kw < kW; kw++) {
      const src = (kh * kW + kw) * inC * outC;
      const dst = ((kH - 1 - kh) * kW + (kW - 1 - kw)) * outC * inC;
      for (let ci = 0; ci < inC; ci++) {
        for (let co = 0; co < outC; co++) f[dst + co * inC + ci] = w[src + ci * outC + co];
      }
    }
  }
  return out;
}

function conv2DBackpropInput({ inputs, backend, attrs }: KernelArgs): TensorInfo | null {
  const a = attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
  if (a.dataFormat === 'NCHW') return null; // the stock kernel handles NCHW
  const wasmBackend = asWasm(backend);
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const g = convGeometry('Conv2DBackpropInput', a.inputShape, filter.shape, a, false);
  const K = g.kH * g.kW * g.inC;
  const pixels = g.outH * g.outW;

  const pads = g.strideH === 1 && g.strideW === 1 && !isPointwise(g) ? transposedPads(g) : null;
  if (pads) {
    const flipped = flipFilter(wasmBackend, filter, g);
    const dx = convTransposeViaForward(wasmBackend, 'Conv2D', dy, flipped, g, pads);
    free(wasmBackend, flipped);
    return dx;
  }

  // Wᵀ: filter [K, CO] → [CO, K], a fresh tensor so XNNPACK packs it anew.
  const wT = alloc(wasmBackend, [g.outC, K]);
  {
    const w = f32(wasmBackend, filter);
    const t = f32(wasmBackend, wT);
    for (let k = 0; k < K; k++) for (let co = 0; co < g.outC; co++) t[co * K + k] = w[k * g.outC + co];
  }

  if (isPointwise(g)) {
    const out = matMul(wasmBackend, view(dy, [g.batch * pixels, g.outC]), wT);
    free(wasmBackend, wT);
    return view(out, [...a.inputShape]);
  }

  const dx = alloc(wasmBackend, [...a.inputShape]);
  f32(wasmBackend, dx).fill(0);
  const chunk = imagesPerChunk(g, K);
  for (let b0 = 0; b0 < g.batch; b0 += chunk) {
    const nb = Math.min(chunk, g.batch - b0);
    const m = nb * pixels;
    let dyPart: TensorInfo;
    if (nb === g.batch) {
      dyPart = dy;
    } else {
      dyPart = alloc(wasmBackend, [m, g.outC]);
      f32(wasmBackend, dyPart).set(f32(wasmBackend, dy).subarray(b0 * pixels * g.outC, (b0 + nb) * pixels * g.outC));
    }
    const cols = matMul(wasmBackend, view(dyPart, [m, g.outC]), wT);
    col2im(f32(wasmBackend, cols), g, b0, nb, f32(wasmBackend, dx));
    free(wasmBackend, cols);
    if (dyPart !== dy) free(wasmBackend, dyPart);
  }
  free(wasmBackend, wT);
  return dx;
}

export const conv2DBackpropInputOverride: Override = { kernelName: 'Conv2DBackpropInput', fast: conv2DBackpropInput };

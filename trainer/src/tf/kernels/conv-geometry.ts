/**
 * Conv geometry for the backprop kernels, from the same attributes the forward
 * op used (tfjs-core's computeConv2DInfo resolves 'same'/'valid'/explicit pads
 * exactly as the forward kernels do, so gradients line up with them).
 */
import { backend_util } from '@tensorflow/tfjs-core';

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;
type Shape4 = [number, number, number, number];

export interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
}

export interface ConvAttrs {
  strides: number | [number, number];
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: number | [number, number];
  dataFormat?: 'NHWC' | 'NCHW';
}

export function convGeometry(
  kernel: string,
  xShape: number[],
  filterShape: number[],
  attrs: ConvAttrs,
  depthwise: boolean,
): ConvGeometry {
  if (attrs.dataFormat === 'NCHW') {
    // The wasm forward Conv2D rejects NCHW too, so no graph can reach here with it.
    throw new Error(`${kernel} (wasm): only NHWC is supported`);
  }
  const info = backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    depthwise,
    'channelsLast',
  );
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) {
    // tfjs-core's gradients reject dilation > 1 for these ops as well.
    throw new Error(`${kernel} (wasm): dilations > 1 are not supported`);
  }
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    outC: info.outChannels,
    kH: info.filterHeight,
    kW: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/** 1×1, stride 1, no padding: x's pixels are exactly the conv's im2col rows. */
export function isPointwise(g: ConvGeometry): boolean {
  return (
    g.kH === 1 &&
    g.kW === 1 &&
    g.strideH === 1 &&
    g.strideW === 1 &&
    g.padTop === 0 &&
    g.padLeft === 0 &&
    g.outH === g.inH &&
    g.outW === g.inW
  );
}

/**
 * Cap on the im2col/col2im scratch buffers, in floats (32 MB). Mutable so
 * tests can force the multi-chunk path on small inputs.
 */
export const scratchLimit = { floats: 1 << 23 };

/** Images per chunk so that a [images·outH·outW, perRow] scratch stays under the cap. */
export function imagesPerChunk(g: ConvGeometry, perRow: number): number {
  const perImage = g.outH * g.outW * perRow;
  return Math.max(1, Math.min(g.batch, Math.floor(scratchLimit.floats / Math.max(1, perImage))));
}

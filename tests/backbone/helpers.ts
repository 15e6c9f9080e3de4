import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  OnnxDataType,
  encodeModel,
  makeAttribute,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
} from '../../trainer/src/onnx/onnx-proto.ts';
import { referenceDataDir } from '../../trainer/src/core/data-path.ts';

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `protoatlas-backbone-${prefix}-`));
}

export async function cleanup(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Real reference data ($PROTOPNET_DATA or ../shared/data); tests needing it skip when absent. */
export const DATA_DIR = referenceDataDir();
export const MOBILENET_ONNX = join(DATA_DIR, 'backbones/mobilenetv2-int8-onnx/mobilenetv2-12-int8.onnx');
export const TEACHABLE_JSON = join(DATA_DIR, 'backbones/teachable-mobilenetv2-0.35/model.json');
export const HAS_MOBILENET = existsSync(MOBILENET_ONNX);
export const HAS_TEACHABLE = existsSync(TEACHABLE_JSON);
export const NO_DATA_NOTE = `reference data not found under ${DATA_DIR} (set PROTOPNET_DATA)`;

/** Tiny float CNN: X[N,3,4,4] → 1x1 Conv(2) + bias → Relu → GlobalAveragePool → Flatten → Y[N,2]. */
export const TINY_CONV = {
  w: [0.5, -1, 1, 2, -0.25, 0.75], // [2 out, 3 in, 1, 1]
  b: [0.1, -0.2],
  cIn: 3,
  cOut: 2,
  side: 4,
};

export function tinyFloatModel(): Uint8Array {
  const { w, b, cIn, cOut, side } = TINY_CONV;
  const graph = makeGraph({
    name: 'tiny_float',
    nodes: [
      makeNode('Conv', ['X', 'W', 'B'], ['conv'], {
        name: 'conv',
        attributes: [makeAttribute('kernel_shape', [1, 1])],
      }),
      makeNode('Relu', ['conv'], ['relu'], { name: 'relu' }),
      makeNode('GlobalAveragePool', ['relu'], ['pool'], { name: 'gap' }),
      makeNode('Flatten', ['pool'], ['Y'], { name: 'flatten' }),
    ],
    initializers: [
      makeTensor('W', OnnxDataType.FLOAT, [cOut, cIn, 1, 1], w),
      makeTensor('B', OnnxDataType.FLOAT, [cOut], b),
    ],
    inputs: [makeValueInfo('X', OnnxDataType.FLOAT, ['N', cIn, side, side])],
    outputs: [makeValueInfo('Y', OnnxDataType.FLOAT, ['N', cOut])],
  });
  return encodeModel(makeModel(graph, { '': 13 }));
}

/** JS reference of the tiny conv + relu on an NCHW input: NCHW output [n, 2, 4, 4]. */
export function tinyConvRelu(x: Float32Array, n: number): Float32Array {
  const { w, b, cIn, cOut, side } = TINY_CONV;
  const hw = side * side;
  const out = new Float32Array(n * cOut * hw);
  for (let i = 0; i < n; i++)
    for (let o = 0; o < cOut; o++)
      for (let p = 0; p < hw; p++) {
        let s = b[o];
        for (let c = 0; c < cIn; c++) s += w[o * cIn + c] * x[(i * cIn + c) * hw + p];
        out[(i * cOut + o) * hw + p] = Math.max(0, s);
      }
  return out;
}

export const TINY_Q = { scale: 0.1, zeroPoint: 128, outScale: 0.05, outZeroPoint: 100, channels: 3, side: 3 };

/**
 * Tiny quantised model: X[N,3,3,3] → QuantizeLinear → QLinearGlobalAveragePool (com.microsoft)
 * → DequantizeLinear → Y. `int8` uses int8 zero points (zero point shifted by -128).
 */
export function tinyQuantModel(int8 = false): Uint8Array {
  const { scale, zeroPoint, outScale, outZeroPoint, channels, side } = TINY_Q;
  const zt = int8 ? OnnxDataType.INT8 : OnnxDataType.UINT8;
  const shift = int8 ? -128 : 0;
  const graph = makeGraph({
    name: 'tiny_quant',
    nodes: [
      makeNode('QuantizeLinear', ['X', 'x_scale', 'x_zp'], ['xq'], { name: 'quantize' }),
      makeNode('QLinearGlobalAveragePool', ['xq', 'x_scale', 'x_zp', 'y_scale', 'y_zp'], ['yq'], {
        name: 'qgap',
        domain: 'com.microsoft',
      }),
      makeNode('DequantizeLinear', ['yq', 'y_scale', 'y_zp'], ['Y'], { name: 'dequantize' }),
    ],
    initializers: [
      makeTensor('x_scale', OnnxDataType.FLOAT, [], [scale]),
      makeTensor('x_zp', zt, [], [zeroPoint + shift]),
      makeTensor('y_scale', OnnxDataType.FLOAT, [], [outScale]),
      makeTensor('y_zp', zt, [], [outZeroPoint + shift]),
    ],
    inputs: [makeValueInfo('X', OnnxDataType.FLOAT, ['N', channels, side, side])],
    outputs: [makeValueInfo('Y', OnnxDataType.FLOAT, ['N', channels, 1, 1])],
  });
  return encodeModel(makeModel(graph, { '': 13, 'com.microsoft': 1 }));
}

/** Deterministic test values that stay clear of quantisation rounding ties. */
export function testValues(n: number, amplitude = 3): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => amplitude * Math.sin(i * 1.7 + 0.3) + 0.013);
}

/** Cosine similarity of two feature arrays of the same length. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] ** 2;
    nb += b[i] ** 2;
  }
  return dot / Math.sqrt(na * nb);
}

/** NCHW → NHWC for one batch. */
export function nchwToNhwc(x: ArrayLike<number>, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(n * c * h * w);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++) out[((i * h + y) * w + xx) * c + ch] = x[((i * c + ch) * h + y) * w + xx];
  return out;
}

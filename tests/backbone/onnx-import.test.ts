import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { gaussianTaps } from '../../trainer/src/backbone/input-blur.ts';
import { dilatedDepthwise, importOnnxBackbone } from '../../trainer/src/backbone/onnx-import.ts';
import { loadOnnxBackbone } from '../../trainer/src/backbone/onnx-backbone.ts';
import {
  encodeModel,
  makeAttribute,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  OnnxDataType,
  decodeModel,
  tensorValues,
} from '../../trainer/src/onnx/onnx-proto.ts';
import { referenceDataDir } from '../../trainer/src/core/data-path.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { maxAbsDiff, toNchw } from '../export/helpers.ts';
import { cosine, nchwToNhwc, testValues } from './helpers.ts';

const PRE = { size: 8, mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] };

/**
 * A tiny int8 QOperator network like the model zoo's MobileNetV2: quantise the
 * input, a per-channel 3x3 stride-2 conv, a depthwise 3x3 conv, a 1x1 conv
 * and a residual QLinearAdd, then the global pool whose input is the tap.
 */
function tinyInt8Model(seed: number): Uint8Array {
  return tinyInt8(seed).bytes;
}

/** The int8 weights of the tiny network (drawn in this order) and the model. */
function tinyInt8(seed: number): { bytes: Uint8Array; w1: number[]; w2: number[]; w3: number[] } {
  const rng = new Rng(seed);
  const drawn: number[][] = [];
  const int8 = (n: number) => {
    drawn.push(Array.from({ length: n }, () => Math.round((rng.next() * 2 - 1) * 100)));
    return drawn[drawn.length - 1];
  };
  const t: ReturnType<typeof makeTensor>[] = [];
  const f = (name: string, v: number[], dims: number[] = []) => t.push(makeTensor(name, OnnxDataType.FLOAT, dims, v));
  const u8 = (name: string, v: number) => t.push(makeTensor(name, OnnxDataType.UINT8, [], [v]));
  f('x_s', [0.02]);
  u8('x_zp', 128);
  // conv1: 3 -> 4 channels, 3x3 stride 2 pad 1, per-channel scales.
  t.push(makeTensor('w1', OnnxDataType.INT8, [4, 3, 3, 3], int8(4 * 27)));
  f('w1_s', [0.004, 0.005, 0.003, 0.006], [4]);
  t.push(makeTensor('w1_zp', OnnxDataType.INT8, [4], [0, 0, 0, 0]));
  t.push(makeTensor('b1', OnnxDataType.INT32, [4], [100, -200, 50, 0]));
  f('y1_s', [0.01]);
  u8('y1_zp', 0); // range [0, 2.55]: a fused ReLU
  // conv2: depthwise 3x3 pad 1.
  t.push(makeTensor('w2', OnnxDataType.INT8, [4, 1, 3, 3], int8(36)));
  f('w2_s', [0.01, 0.01, 0.012, 0.008], [4]);
  t.push(makeTensor('w2_zp', OnnxDataType.INT8, [4], [0, 0, 0, 0]));
  t.push(makeTensor('b2', OnnxDataType.INT32, [4], [10, 0, -10, 5]));
  f('y2_s', [0.012]);
  u8('y2_zp', 0);
  // conv3: 1x1, 4 -> 4, linear (zero point in the middle: no clipping at 0).
  t.push(makeTensor('w3', OnnxDataType.INT8, [4, 4, 1, 1], int8(16)));
  f('w3_s', [0.01, 0.01, 0.01, 0.01], [4]);
  t.push(makeTensor('w3_zp', OnnxDataType.INT8, [4], [0, 0, 0, 0]));
  t.push(makeTensor('b3', OnnxDataType.INT32, [4], [0, 0, 0, 0]));
  f('y3_s', [0.05]); // calibrated wide enough that the linear layer does not saturate
  u8('y3_zp', 128);
  f('a_s', [0.04]);
  u8('a_zp', 40);
  f('p_s', [0.04]);
  u8('p_zp', 40);
  const conv = (
    x: string,
    xs: string,
    xzp: string,
    w: string,
    y: string,
    ys: string,
    yzp: string,
    b: string,
    attrs: Uint8Array[],
  ) => makeNode('QLinearConv', [x, xs, xzp, w, `${w}_s`, `${w}_zp`, ys, yzp, b], [y], { name: y, attributes: attrs });
  const nodes = [
    makeNode('QuantizeLinear', ['input', 'x_s', 'x_zp'], ['xq']),
    conv('xq', 'x_s', 'x_zp', 'w1', 'y1', 'y1_s', 'y1_zp', 'b1', [
      makeAttribute('kernel_shape', [3, 3]),
      makeAttribute('strides', [2, 2]),
      makeAttribute('pads', [1, 1, 1, 1]),
    ]),
    conv('y1', 'y1_s', 'y1_zp', 'w2', 'y2', 'y2_s', 'y2_zp', 'b2', [
      makeAttribute('kernel_shape', [3, 3]),
      makeAttribute('pads', [1, 1, 1, 1]),
      makeAttribute('group', 4),
    ]),
    conv('y2', 'y2_s', 'y2_zp', 'w3', 'y3', 'y3_s', 'y3_zp', 'b3', [makeAttribute('kernel_shape', [1, 1])]),
    makeNode('QLinearAdd', ['y3', 'y3_s', 'y3_zp', 'y1', 'y1_s', 'y1_zp', 'a_s', 'a_zp'], ['sum'], {
      domain: 'com.microsoft',
    }),
    makeNode('QLinearGlobalAveragePool', ['sum', 'a_s', 'a_zp', 'p_s', 'p_zp'], ['pooled'], {
      domain: 'com.microsoft',
      attributes: [makeAttribute('channels_last', 0)],
    }),
    makeNode('DequantizeLinear', ['pooled', 'p_s', 'p_zp'], ['output']),
  ];
  const graph = makeGraph({
    nodes,
    initializers: t,
    inputs: [makeValueInfo('input', OnnxDataType.FLOAT, ['N', 3, 8, 8])],
    outputs: [makeValueInfo('output', OnnxDataType.FLOAT)],
  });
  const bytes = encodeModel(makeModel(graph, { '': 13, 'com.microsoft': 1 }));
  return { bytes, w1: drawn[0], w2: drawn[1], w3: drawn[2] };
}

/**
 * The float network the int8 graph stands for, written out in float64 on NHWC [n, 8, 8, 3]:
 * int8 weights dequantised (per-channel scale, bias = b x x_scale x w_scale), activations
 * not rounded; the input clipped to its quantised range; output ranges starting at 0
 * (conv1, conv2) are ReLUs capped at their top, the others (conv3, the add) are linear.
 */
function floatReference(x: Float32Array, n: number, m: ReturnType<typeof tinyInt8>): Float64Array {
  type Map3 = { h: number; w: number; c: number; v: Float64Array };
  const at = (t: Map3, i: number, y: number, xx: number, c: number) =>
    y < 0 || xx < 0 || y >= t.h || xx >= t.w ? 0 : t.v[((i * t.h + y) * t.w + xx) * t.c + c];
  type Layer = { w: number[]; ws: number[]; b: number[]; xs: number; cout: number; k: number };
  type Conv = Layer & { stride: number; pad: number };
  const conv = (t: Map3, l: Conv, depthwise: boolean, lo: number, hi: number): Map3 => {
    const { w, ws, b, xs, cout, k, stride, pad } = l;
    const h = Math.floor((t.h + 2 * pad - k) / stride) + 1;
    const ww = Math.floor((t.w + 2 * pad - k) / stride) + 1;
    const cin = depthwise ? 1 : t.c;
    const v = new Float64Array(n * h * ww * cout);
    for (let i = 0; i < n; i++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < ww; xx++)
          for (let o = 0; o < cout; o++) {
            let s = b[o] * xs * ws[o];
            for (let ci = 0; ci < cin; ci++)
              for (let r = 0; r < k; r++)
                for (let c = 0; c < k; c++) {
                  const inC = depthwise ? o : ci;
                  const v = at(t, i, y * stride - pad + r, xx * stride - pad + c, inC);
                  s += w[((o * cin + ci) * k + r) * k + c] * ws[o] * v;
                }
            v[((i * h + y) * ww + xx) * cout + o] = Math.min(hi, Math.max(lo, s));
          }
    return { h, w: ww, c: cout, v };
  };
  const clipped = Float64Array.from(x, (v) => Math.min(127 * 0.02, Math.max(-128 * 0.02, v)));
  const input: Map3 = { h: 8, w: 8, c: 3, v: clipped };
  const l1 = { w: m.w1, ws: [0.004, 0.005, 0.003, 0.006], b: [100, -200, 50, 0], xs: 0.02, cout: 4, k: 3 };
  const y1 = conv(input, { ...l1, stride: 2, pad: 1 }, false, 0, 2.55);
  const l2 = { w: m.w2, ws: [0.01, 0.01, 0.012, 0.008], b: [10, 0, -10, 5], xs: 0.01, cout: 4, k: 3 };
  const y2 = conv(y1, { ...l2, stride: 1, pad: 1 }, true, 0, 255 * 0.012);
  const l3 = { w: m.w3, ws: [0.01, 0.01, 0.01, 0.01], b: [0, 0, 0, 0], xs: 0.012, cout: 4, k: 1 };
  const y3 = conv(y2, { ...l3, stride: 1, pad: 0 }, false, -Infinity, Infinity);
  return y3.v.map((v, i) => v + y1.v[i]);
}

describe('ONNX backbone imported as a trainable float network', () => {
  let path: string;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    path = join(await mkdtemp(join(tmpdir(), 'protoatlas-import-')), 'tiny-int8.onnx');
    await writeFile(path, tinyInt8Model(4));
  });

  it('computes the float network the int8 graph stands for (float64 reference, 1e-5)', async () => {
    const imported = await importOnnxBackbone({ path, tap: 'auto', preprocess: PRE });
    const x = testValues(2 * 8 * 8 * 3, 3).map((v) => v * 2); // +-6: the input clip at +-2.56 matters
    const got = await imported.extract(x, 2);
    const want = floatReference(x, 2, tinyInt8(4));
    expect(got.length).toBe(want.length);
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
    expect(maxDiff).toBeLessThan(1e-5);
    // The reference is not degenerate: both signs, values well above the tolerance.
    expect(Math.max(...want)).toBeGreaterThan(0.3);
    expect(Math.min(...want)).toBeLessThan(-0.1);
  });

  it('computes what onnxruntime computes on the int8 graph, up to int8 rounding', async () => {
    const imported = await importOnnxBackbone({ path, tap: 'auto', preprocess: PRE });
    expect(imported.featureShape).toEqual([4, 4, 4]);
    const reference = await loadOnnxBackbone({ path, tap: 'auto', preprocess: PRE, threads: 1 });
    const x = testValues(2 * 8 * 8 * 3, 3).map((v) => v * 2);
    const [a, b] = [await imported.extract(x, 2), await reference.extract(x, 2)];
    expect(a.length).toBe(b.length);
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    // A few quantisation steps (0.04) of rounding through three layers; a wrong layout or scale is off by far more.
    expect(maxDiff).toBeLessThan(0.1);
    expect(Math.max(...b)).toBeGreaterThan(0.3);
    // The fused ReLU of conv1 (zero point 0) is kept as a clip.
    const c1 = await importOnnxBackbone({ path, tap: 'y1', preprocess: PRE });
    const y1 = await c1.extract(x, 2);
    expect(Math.min(...y1)).toBe(0);
    expect(Math.max(...y1)).toBeLessThanOrEqual(2.55 + 1e-6);
    await reference.dispose();
  });

  it('trains: every weight gets a gradient, and weights round-trip by name', async () => {
    const net = await importOnnxBackbone({ path, tap: 'auto', preprocess: PRE });
    const vars = net.trainableVariables();
    expect(vars).toHaveLength(6); // three convs: kernel + bias
    const x = tf.tensor4d(testValues(8 * 8 * 3, 5), [1, 8, 8, 3]);
    const { grads } = tf.variableGrads(() => tf.sum(tf.square(net.apply(x, true))) as tf.Scalar, vars);
    for (const v of vars) expect(tf.sum(tf.abs(grads[v.name])).dataSync()[0]).toBeGreaterThan(0);
    const w = net.getWeights();
    const other = await importOnnxBackbone({ path, tap: 'auto', preprocess: PRE });
    const bumped = new Map([...w].map(([k, t]) => [k, { shape: t.shape, data: t.data.map((v) => v + 0.01) }]));
    other.setWeights(bumped);
    expect(Array.from(other.getWeights().get('conv0.bias')!.data)).toEqual(Array.from(bumped.get('conv0.bias')!.data));
  });

  it('exports itself, with tuned weights, as a float ONNX graph that onnxruntime runs identically', async () => {
    const net = await importOnnxBackbone({ path, tap: 'auto', preprocess: PRE });
    // Stand in for fine-tuning: move every weight.
    net.setWeights(
      new Map(
        [...net.getWeights()].map(([k, t]) => [
          k,
          { shape: t.shape, data: t.data.map((v, i) => v + 0.01 * Math.sin(i)) },
        ]),
      ),
    );
    const { bytes, tap } = net.toOnnx();
    const file = join(path, '..', 'tuned.onnx');
    await writeFile(file, bytes);
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(file);
    const x = testValues(2 * 8 * 8 * 3, 7);
    const nchw = new Float32Array(x.length);
    for (let n = 0; n < 2; n++)
      for (let h = 0; h < 8; h++)
        for (let w = 0; w < 8; w++)
          for (let c = 0; c < 3; c++) nchw[((n * 3 + c) * 8 + h) * 8 + w] = x[((n * 8 + h) * 8 + w) * 3 + c];
    const out = (await session.run({ input: new ort.Tensor('float32', nchw, [2, 3, 8, 8]) }))[tap].data as Float32Array;
    const mine = await net.extract(x, 2); // NHWC [2, 4, 4, 4]
    let maxDiff = 0;
    for (let n = 0; n < 2; n++)
      for (let c = 0; c < 4; c++)
        for (let h = 0; h < 4; h++)
          for (let w = 0; w < 4; w++)
            maxDiff = Math.max(
              maxDiff,
              Math.abs(out[((n * 4 + c) * 4 + h) * 4 + w] - mine[((n * 4 + h) * 4 + w) * 4 + c]),
            );
    expect(maxDiff).toBeLessThan(1e-5);
    await session.release();
  });

  it('dilated (outputStride): matches onnxruntime on the rewritten int8 graph, and exports the dilation', async () => {
    // Output stride 1 keeps conv1 at stride 1 and dilates the depthwise conv by 2: an 8x8 map.
    const imported = await importOnnxBackbone({ path, tap: 'auto', preprocess: PRE, outputStride: 1 });
    expect(imported.featureShape).toEqual([8, 8, 4]);
    const reference = await loadOnnxBackbone({
      path,
      tap: 'auto',
      preprocess: PRE,
      threads: 1,
      outputStride: 1 as unknown as 16,
    });
    const x = testValues(2 * 8 * 8 * 3, 3).map((v) => v * 2);
    const [a, b] = [await imported.extract(x, 2), await reference.extract(x, 2)];
    expect(b.length).toBe(2 * 8 * 8 * 4);
    expect(maxAbsDiff(a, b)).toBeLessThan(0.1);
    // The undilated import differs from the dilated reference by far more than rounding.
    const plain = await importOnnxBackbone({ path, tap: 'y2', preprocess: PRE });
    const dilatedY2 = await importOnnxBackbone({ path, tap: 'y2', preprocess: PRE, outputStride: 1 });
    expect(plain.featureShape).toEqual([4, 4, 4]);
    expect(dilatedY2.featureShape).toEqual([8, 8, 4]);
    // Exported as float ONNX, the dilation survives: onnxruntime agrees with the import.
    const file = join(path, '..', 'tuned-dilated.onnx');
    const { bytes, tap } = imported.toOnnx();
    await writeFile(file, bytes);
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(file);
    const feed = { input: new ort.Tensor('float32', toNchw(x, 2, 8, 8, 3), [2, 3, 8, 8]) };
    const out = (await session.run(feed))[tap].data as Float32Array;
    expect(maxAbsDiff(nchwToNhwc(out, 2, 4, 8, 8), a)).toBeLessThan(1e-5);
    await session.release();
    await reference.dispose();
  });

  it('dilated depthwise: values and gradients equal the space-to-batch formulation', () => {
    // Rate 2 on an 8x8 map padded by 2 = a plain 3x3 conv on each of the 2x2 interleaved 6x6 grids.
    const x = tf.variable(tf.tensor4d(testValues(2 * 8 * 8 * 3, 11), [2, 8, 8, 3]));
    const kernel = tf.variable(tf.tensor4d(testValues(27, 12), [3, 3, 3, 1]));
    const bias = tf.variable(tf.tensor1d([0.1, -0.2, 0.3]));
    const target = tf.tensor4d(testValues(2 * 8 * 8 * 3, 13), [2, 8, 8, 3]);
    const viaShifts = () => dilatedDepthwise(x as tf.Tensor4D, { kernel, bias }, [2, 2, 2, 2], [2, 2], true);
    const viaBatches = () => {
      const padded = tf.pad(x, [
        [0, 0],
        [2, 2],
        [2, 2],
        [0, 0],
      ]) as tf.Tensor4D;
      const grids = tf.spaceToBatchND(
        padded,
        [2, 2],
        [
          [0, 0],
          [0, 0],
        ],
      ) as tf.Tensor4D;
      const conv = tf.depthwiseConv2d(grids, kernel as tf.Tensor4D, 1, 'valid');
      return tf.relu(
        tf.add(
          tf.batchToSpaceND(
            conv,
            [2, 2],
            [
              [0, 0],
              [0, 0],
            ],
          ),
          bias,
        ),
      ) as tf.Tensor4D;
    };
    const loss = (f: () => tf.Tensor4D) => () => tf.sum(tf.square(tf.sub(f(), target))) as tf.Scalar;
    const a = tf.variableGrads(loss(viaShifts), [x, kernel, bias]);
    const b = tf.variableGrads(loss(viaBatches), [x, kernel, bias]);
    expect(a.value.dataSync()[0]).toBeCloseTo(b.value.dataSync()[0], 3);
    for (const v of [x, kernel, bias]) {
      const [ga, gb] = [a.grads[v.name].dataSync(), b.grads[v.name].dataSync()];
      const maxDiff = maxAbsDiff(ga, gb);
      const scale = Math.max(...Array.from(gb, Math.abs));
      expect(scale).toBeGreaterThan(0.01);
      // float32 sums in a different order: equal to ~6 significant digits.
      expect(maxDiff / scale).toBeLessThan(1e-5);
    }
  });

  /** The network whole, cut at y1, and the part after y1 (imported on the bottom's activations). */
  const wholeBottomTop = async () => {
    const whole = await importOnnxBackbone({ path, tap: 'auto', preprocess: PRE, outputStride: 1 });
    const bottom = await importOnnxBackbone({ path, tap: 'y1', preprocess: PRE, outputStride: 1 });
    const top = await importOnnxBackbone({
      path,
      tap: 'auto',
      preprocess: PRE,
      outputStride: 1,
      from: 'y1',
      fromShape: bottom.featureShape,
    });
    return { whole, bottom, top };
  };

  it('from a middle tensor: the top of the network on the activations of its bottom is the whole network', async () => {
    const { whole, bottom, top } = await wholeBottomTop();
    expect(top.trainableVariables()).toHaveLength(4); // the depthwise and 1x1 convs only
    expect(top.featureShape).toEqual(whole.featureShape);
    const x = testValues(2 * 8 * 8 * 3, 3).map((v) => v * 2);
    const [a, b] = [await whole.extract(x, 2), await top.extract(await bottom.extract(x, 2), 2)];
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
    await expect(
      importOnnxBackbone({ path, tap: 'y1', preprocess: PRE, from: 'y2', fromShape: [4, 4, 4] }),
    ).rejects.toThrow(/does not depend on "from" tensor y2/);
    expect(() => top.toOnnx()).toThrow(/is a part/);
  });

  it("setPartWeights puts a part's (tuned) weights into the whole network, by position after `from`", async () => {
    const { whole, bottom, top } = await wholeBottomTop();
    // "Tune" the top: every weight scaled, so the whole network's output changes only if they arrive.
    const tuned = new Map(
      [...top.getWeights()].map(([k, w]) => [
        k,
        { shape: w.shape, data: w.data.map((v, i) => v * (1.5 + (i % 3) * 0.1)) },
      ]),
    );
    top.setWeights(tuned);
    const x = testValues(2 * 8 * 8 * 3, 5).map((v) => v * 2);
    const before = await whole.extract(x, 2);
    whole.setPartWeights('y1', tuned);
    const [a, b] = [await whole.extract(x, 2), await top.extract(await bottom.extract(x, 2), 2)];
    expect(maxAbsDiff(before, b)).toBeGreaterThan(1e-2);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
    // The weights of a different cut do not fit: named, not silently misplaced.
    const fewer = new Map([...tuned].slice(0, 2));
    expect(() => whole.setPartWeights('y1', fewer)).toThrow(/2 weights for the 2 convs after y1/);
    expect(() => top.setPartWeights('y1', tuned)).toThrow(/is a part/);
  });

  it('a fixed input blur: imported as a conv that never trains, computed and exported like the published graph', async () => {
    const plain = await importOnnxBackbone({ path, tap: 'auto', preprocess: PRE });
    const net = await importOnnxBackbone({ path, tap: 'auto', preprocess: PRE, inputBlur: 1 });
    expect(net.hash).not.toBe(plain.hash);
    expect(net.description).toMatch(/input blur sigma 1/);
    // Trainable weights and checkpoint names are those of the network without the blur.
    expect(net.trainableVariables()).toHaveLength(6);
    expect([...net.getWeights().keys()]).toEqual([...plain.getWeights().keys()]);
    const x = testValues(2 * 8 * 8 * 3, 3).map((v) => v * 2);
    // The reference: the unblurred import on the image blurred by hand (zero padding, 5x5 taps).
    const taps = gaussianTaps(1);
    const r = (taps.length - 1) / 2;
    const blurred = new Float32Array(x.length);
    for (let n = 0; n < 2; n++)
      for (let i = 0; i < 8; i++)
        for (let j = 0; j < 8; j++)
          for (let c = 0; c < 3; c++) {
            let acc = 0;
            for (let a = -r; a <= r; a++)
              for (let b = -r; b <= r; b++)
                if (i + a >= 0 && i + a < 8 && j + b >= 0 && j + b < 8)
                  acc += x[((n * 8 + i + a) * 8 + j + b) * 3 + c] * taps[a + r] * taps[b + r];
            blurred[((n * 8 + i) * 8 + j) * 3 + c] = acc;
          }
    const got = await net.extract(x, 2);
    expect(maxAbsDiff(got, await plain.extract(blurred, 2))).toBeLessThan(1e-5);
    expect(maxAbsDiff(got, await plain.extract(x, 2))).toBeGreaterThan(1e-2);
    // A training step moves the network's weights, not the blur: the export still blurs with the same kernel.
    const xs = tf.tensor4d(x.slice(0, 8 * 8 * 3), [1, 8, 8, 3]);
    const opt = tf.train.sgd(0.1);
    opt.minimize(() => tf.sum(tf.square(net.apply(xs, true))) as tf.Scalar, false, net.trainableVariables());
    const { bytes, tap } = net.toOnnx();
    const kernel = decodeModel(bytes).graph.initializers.find((t) => t.dims.join('x') === '3x1x5x5');
    const want = taps.flatMap((a) => taps.map((b) => a * b));
    expect(maxAbsDiff(tensorValues(kernel!).slice(0, 25), want)).toBeLessThan(1e-7);
    const file = join(path, '..', 'tuned-blurred.onnx');
    await writeFile(file, bytes);
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(file);
    const out = (await session.run({ input: new ort.Tensor('float32', toNchw(x, 2, 8, 8, 3), [2, 3, 8, 8]) }))[tap]
      .data as Float32Array;
    expect(maxAbsDiff(nchwToNhwc(out, 2, 4, 4, 4), await net.extract(x, 2))).toBeLessThan(1e-5);
    await session.release();
    for (const m of [plain, net]) await m.dispose();
  });

  it('names what it cannot import', async () => {
    await expect(importOnnxBackbone({ path, tap: 'pooled', preprocess: PRE })).rejects.toThrow(
      /QLinearGlobalAveragePool .* not supported/,
    );
  });

  const mobilenet = join(referenceDataDir(), 'backbones/mobilenetv2-int8-onnx/mobilenetv2-12-int8.onnx');
  const noMobilenet = existsSync(mobilenet) ? '' : ` (skipped: ${mobilenet} not found; set PROTOPNET_DATA)`;
  const realTitle = `MobileNetV2 int8 (../shared/data): same 7x7x1280 map, close to the int8 features${noMobilenet}`;
  it.skipIf(!existsSync(mobilenet))(
    realTitle,
    async () => {
      const pre = {
        size: 224,
        mean: [0.485, 0.456, 0.406] as [number, number, number],
        std: [0.229, 0.224, 0.225] as [number, number, number],
      };
      const imported = await importOnnxBackbone({ path: mobilenet, tap: 'auto', preprocess: pre });
      expect(imported.featureShape).toEqual([7, 7, 1280]);
      expect(imported.trainableVariables()).toHaveLength(104);
      const reference = await loadOnnxBackbone({ path: mobilenet, tap: 'auto', preprocess: pre, threads: 1 });
      const x = testValues(224 * 224 * 3, 9);
      const [a, b] = [await imported.extract(x, 1), await reference.extract(x, 1)];
      // 52 int8 layers of rounding separate the two (measured 0.94 on CUB photos; layer by layer 1.000 -> 0.98).
      expect(cosine(a, b)).toBeGreaterThan(0.85);
      await reference.dispose();
    },
    60_000,
  );

  it.skipIf(!existsSync(mobilenet))(
    `MobileNetV2 int8 at output stride 16 (../shared/data): a 14x14x1280 map, as close to onnxruntime's as at stride 32${noMobilenet}`,
    async () => {
      const pre = {
        size: 224,
        mean: [0.485, 0.456, 0.406] as [number, number, number],
        std: [0.229, 0.224, 0.225] as [number, number, number],
      };
      const imported = await importOnnxBackbone({ path: mobilenet, tap: 'auto', preprocess: pre, outputStride: 16 });
      expect(imported.featureShape).toEqual([14, 14, 1280]);
      expect(imported.trainableVariables()).toHaveLength(104);
      const reference = await loadOnnxBackbone({
        path: mobilenet,
        tap: 'auto',
        preprocess: pre,
        threads: 1,
        outputStride: 16,
      });
      const x = testValues(224 * 224 * 3, 9);
      const [a, b] = [await imported.extract(x, 1), await reference.extract(x, 1)];
      // The same int8 rounding gap as the published stride's (above); a wrong dilation or padding is far off.
      expect(cosine(a, b)).toBeGreaterThan(0.85);
      await reference.dispose();
    },
    120_000,
  );
});

import * as tf from '@tensorflow/tfjs-core';
import { input, layers, model as makeModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSmallCnn } from '../../trainer/src/backbone/small-cnn.ts';
import { loadTfjsLayersBackbone } from '../../trainer/src/backbone/tfjs-layers-backbone.ts';
import { decodeModel } from '../../trainer/src/onnx/onnx-proto.ts';
import { spatialPads } from '../../trainer/src/export/backbone-graph.ts';
import { checkModel } from '../../trainer/src/onnx/check-graph.ts';
import { buildLayersFeatureModel } from '../../trainer/src/export/export-onnx.ts';
import { HAS_TEACHABLE, NO_DATA_NOTE, TEACHABLE_JSON } from '../backbone/helpers.ts';
import { maxAbsDiff, randomValues, randomizeLayers, runOrt, toNchw, useCpuBackend } from './helpers.ts';

beforeAll(useCpuBackend);

const SYM = { mean: [0.5, 0.5, 0.5] as [number, number, number], std: [0.5, 0.5, 0.5] as [number, number, number] };

/** tfjs predict (NHWC) vs the ONNX feature model (NCHW in, NCHW out) on the same images; returns the max abs diff. */
async function compareFeatures(
  net: LayersModel,
  size: number,
  n: number,
  seed: number,
): Promise<{ diff: number; maxAbs: number; ops: string[] }> {
  const x = randomValues(n * size * size * 3, seed);
  const y = tf.tidy(() => net.predict(tf.tensor4d(x, [n, size, size, 3])) as tf.Tensor4D);
  const [, h, w, c] = y.shape;
  const ref = toNchw(y.dataSync(), n, h, w, c);
  y.dispose();
  const e = buildLayersFeatureModel(net, { size, ...SYM });
  expect(checkModel(e.bytes).problems).toEqual([]);
  const out = await runOrt(e.bytes, {
    image: new ort.Tensor('float32', toNchw(x, n, size, size, 3), [n, 3, size, size]),
  });
  expect(out.features.dims).toEqual([n, c, h, w]);
  const ops = decodeModel(e.bytes).graph.nodes.map((nd) => nd.opType);
  return {
    diff: maxAbsDiff(out.features.data as Float32Array, ref),
    maxAbs: Math.max(...Array.from(ref, Math.abs)),
    ops,
  };
}

describe('TF padding', () => {
  it("'same' puts the odd pixel at the bottom/right, as TensorFlow does", () => {
    // in 8, k 3, s 2 → out 4, total pad (4-1)*2+3-8 = 1: none before, one after.
    expect(spatialPads('same', [null, 8, 8, 3], [3, 3], [2, 2], [1, 1])).toEqual([0, 0, 1, 1]);
    // in 7, k 3, s 2 → out 4, total 2: one each side.
    expect(spatialPads('same', [null, 7, 7, 3], [3, 3], [2, 2], [1, 1])).toEqual([1, 1, 1, 1]);
    // dilation 2 makes a 3-tap kernel span 5: in 6, s 1 → total 4.
    expect(spatialPads('same', [null, 6, 9, 3], [3, 1], [1, 1], [2, 1])).toEqual([2, 0, 2, 0]);
    expect(spatialPads('valid', [null, 6, 6, 3], [3, 3], [2, 2], [1, 1])).toEqual([0, 0, 0, 0]);
  });
});

describe('tfjs layers → ONNX', () => {
  for (const convsPerStage of [2, 1] as const) {
    it(`converts the small CNN (${convsPerStage} conv(s) per stage) with batch norm folded (non-trivial statistics)`, async () => {
      const cnn = createSmallCnn({ inputSize: 20, channels: [4, 8], seed: 2, convsPerStage });
      randomizeLayers(cnn.model, 3);
      const r = await compareFeatures(cnn.model, 20, 2, 4);
      expect(r.ops.filter((o) => o === 'Conv')).toHaveLength(2 * convsPerStage);
      expect(r.ops).not.toContain('BatchNormalization');
      expect(r.maxAbs).toBeGreaterThan(0.5);
      expect(r.diff).toBeLessThan(1e-4);
      await cnn.dispose();
    });
  }

  it('converts depthwise, zero padding, ReLU6, Add, Concatenate, pooling and a nested model', async () => {
    const size = 11; // odd: 'same' stride-2 padding differs from symmetric padding here
    const x = input({ shape: [size, size, 3] });
    // A nested functional model, used as a layer.
    const innerIn = input({ shape: [6, 6, 8] });
    const innerOut = layers
      .conv2d({ filters: 8, kernelSize: 1, activation: 'relu', name: 'inner_conv' })
      .apply(innerIn) as SymbolicTensor;
    const inner = makeModel({ inputs: innerIn, outputs: innerOut, name: 'inner' });

    let h = layers
      .zeroPadding2d({
        padding: [
          [0, 1],
          [0, 1],
        ],
        name: 'pad',
      })
      .apply(x) as SymbolicTensor;
    h = layers
      .conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, name: 'stem' })
      .apply(h) as SymbolicTensor; // 12 → 5
    h = layers.batchNormalization({ name: 'stem_bn' }).apply(h) as SymbolicTensor;
    h = layers.reLU({ maxValue: 6, name: 'stem_relu6' }).apply(h) as SymbolicTensor;
    let d = layers
      .depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', useBias: false, name: 'dw' })
      .apply(h) as SymbolicTensor; // 5x5x8
    d = layers.batchNormalization({ name: 'dw_bn' }).apply(d) as SymbolicTensor;
    d = layers.activation({ activation: 'relu6', name: 'dw_relu6' }).apply(d) as SymbolicTensor;
    const e = layers
      .conv2d({ filters: 8, kernelSize: 1, padding: 'same', name: 'expand', activation: 'relu' })
      .apply(h) as SymbolicTensor;
    let s = layers.add({ name: 'residual' }).apply([d, e]) as SymbolicTensor;
    s = layers.maxPooling2d({ poolSize: 2, strides: 1, padding: 'same', name: 'maxpool' }).apply(s) as SymbolicTensor;
    const a = layers
      .averagePooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'avgpool' })
      .apply(s) as SymbolicTensor; // 5 → 3
    const p = layers
      .conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', dilationRate: 1, name: 'down' })
      .apply(s) as SymbolicTensor; // 5 → 3
    let c = layers.concatenate({ name: 'cat' }).apply([a, p]) as SymbolicTensor; // 3x3x16
    c = layers.leakyReLU({ alpha: 0.1, name: 'leaky' }).apply(c) as SymbolicTensor;
    c = layers.conv2d({ filters: 8, kernelSize: 1, name: 'squeeze' }).apply(c) as SymbolicTensor;
    c = layers
      .zeroPadding2d({
        padding: [
          [2, 1],
          [1, 2],
        ],
        name: 'pad2',
      })
      .apply(c) as SymbolicTensor; // 6x6
    c = inner.apply(c) as SymbolicTensor;
    const net = makeModel({ inputs: x, outputs: c });
    randomizeLayers(net, 11);

    const r = await compareFeatures(net, size, 2, 12);
    expect(r.ops).not.toContain('BatchNormalization');
    // Both ZeroPadding2D layers feed a Conv, so both fold away.
    expect(r.ops).not.toContain('Pad');
    expect(r.ops).toEqual(expect.arrayContaining(['Clip', 'MaxPool', 'AveragePool', 'Concat', 'LeakyRelu', 'Add']));
    expect(r.maxAbs).toBeGreaterThan(0.1);
    expect(r.diff).toBeLessThan(1e-4);
    net.dispose();
  });

  it('names the layer it cannot convert', () => {
    const x = input({ shape: [4, 4, 3] });
    const y = layers.upSampling2d({ size: [2, 2], name: 'upsample' }).apply(x) as SymbolicTensor;
    const net = makeModel({ inputs: x, outputs: y });
    expect(() => buildLayersFeatureModel(net, { size: 4, ...SYM })).toThrow(
      /layer upsample of class UpSampling2D is not supported/,
    );
  });

  describe.skipIf(!HAS_TEACHABLE)(
    `Teachable Machine MobileNetV2 0.35 cut at out_relu${HAS_TEACHABLE ? '' : ` (skipped: ${NO_DATA_NOTE})`}`,
    () => {
      it('matches tfjs on the real weights', async () => {
        const bb = await loadTfjsLayersBackbone({ modelJsonPath: TEACHABLE_JSON });
        const r = await compareFeatures(bb.model, 224, 1, 21);
        expect(r.ops).not.toContain('BatchNormalization');
        expect(r.ops).not.toContain('Pad');
        expect(r.diff).toBeLessThan(1e-3 * Math.max(1, r.maxAbs));
        await bb.dispose();
      });
    },
  );
});

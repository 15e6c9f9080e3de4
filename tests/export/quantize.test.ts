import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  OnnxDataType,
  decodeModel,
  encodeModel,
  makeAttribute,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  tensorValues,
} from '../../trainer/src/onnx/onnx-proto.ts';
import { insertTap, tapForCompute } from '../../trainer/src/backbone/onnx-tap.ts';
import type { createSmallCnn } from '../../trainer/src/backbone/small-cnn.ts';
import { calibrate, type CalibrationBatch } from '../../trainer/src/export/calibrate.ts';
import { checkModel } from '../../trainer/src/onnx/check-graph.ts';
import { exportOnnx } from '../../trainer/src/export/export-onnx.ts';
import { createWebSession } from '../../trainer/src/export/ort-web.ts';
import {
  activationParams,
  quantizationTargets,
  quantizeStatic,
  quantizeWeights,
  quantizeWeightsOnly,
  rewriteForWasm,
  summarizeModel,
} from '../../trainer/src/export/quantize.ts';
import { floatCompute } from '../../trainer/src/onnx/float-compute.ts';
import { int8FromFp32 } from '../../trainer/src/export/quantize-export.ts';
import type { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { HAS_MOBILENET, MOBILENET_ONNX, NO_DATA_NOTE, cleanup, tempDir } from '../backbone/helpers.ts';
import { count, runOutput, tinyQOperator } from './qoperator-fixture.ts';
import { maxAbsDiff, randomValues, runOrt, useCpuBackend, randomSmallCnnRun } from './helpers.ts';

beforeAll(useCpuBackend);

function argmax(v: ArrayLike<number>, n: number): number[] {
  const c = v.length / n;
  return Array.from({ length: n }, (_, i) => {
    let b = 0;
    for (let j = 1; j < c; j++) if (v[i * c + j] > v[i * c + b]) b = j;
    return b;
  });
}

/** One output of a model run on a float input, in onnxruntime-node or onnxruntime-web. */

// ---- building blocks ------------------------------------------------------------------------------

describe('quantisation parameters', () => {
  it('uint8 activations cover the range and 0; a range starting at 0 has zero point 0', () => {
    expect(activationParams({ min: 0, max: 6 })).toEqual({ scale: Math.fround(6 / 255), zeroPoint: 0 });
    const p = activationParams({ min: -1, max: 3 });
    expect(p.scale).toBeCloseTo(4 / 255, 7);
    expect(p.zeroPoint).toBe(64);
    expect(activationParams({ min: 0.5, max: 2 }).zeroPoint).toBe(0); // 0 is always representable
    expect(activationParams({ min: 0, max: 0 })).toEqual({ scale: 1, zeroPoint: 0 });
  });

  it('int8 weights are symmetric, per output channel or per tensor', () => {
    const w = [1, -0.5, 0.25, 0, 10, -5, 2.5, 1]; // two channels of four
    const pc = quantizeWeights(w, 2, 'per-channel');
    expect(pc.scale).toEqual([Math.fround(1 / 127), Math.fround(10 / 127)]);
    expect(Array.from(pc.q)).toEqual([127, -64, 32, 0, 127, -64, 32, 13]);
    const pt = quantizeWeights(w, 2, 'per-tensor');
    expect(pt.scale).toEqual([Math.fround(10 / 127)]);
    expect(Array.from(pt.q.slice(0, 4))).toEqual([13, -6, 3, 0]);
  });
});

/** x [N,2,6,6] → Conv 3x3 (2→4, pad 1) → Relu → y. */
function reluConvModel(): Uint8Array {
  const graph = makeGraph({
    nodes: [
      makeNode('Conv', ['x', 'w', 'b'], ['c'], {
        attributes: [makeAttribute('kernel_shape', [3, 3]), makeAttribute('pads', [1, 1, 1, 1])],
      }),
      makeNode('Relu', ['c'], ['y']),
    ],
    initializers: [
      makeTensor('w', OnnxDataType.FLOAT, [4, 2, 3, 3], randomValues(72, 1, 0.5)),
      makeTensor('b', OnnxDataType.FLOAT, [4], randomValues(4, 2, 0.3)),
    ],
    inputs: [makeValueInfo('x', OnnxDataType.FLOAT, ['N', 2, 6, 6])],
    outputs: [makeValueInfo('y', OnnxDataType.FLOAT, ['N', 4, 6, 6])],
  });
  return encodeModel(makeModel(graph, { '': 13 }, 7));
}

describe('calibrate', () => {
  it('returns the min and max of graph inputs and intermediate tensors over all batches', async () => {
    const bytes = reluConvModel();
    const batches: CalibrationBatch[] = [1, 2].map((s) => ({
      x: { data: randomValues(2 * 72, 10 + s), dims: [2, 2, 6, 6] },
    }));
    const { ranges, samples } = await calibrate(bytes, ['x', 'c', 'y'], batches);
    expect(samples).toBe(4);
    const all = Float32Array.from([...batches[0].x.data, ...batches[1].x.data]);
    expect(ranges.get('x')).toEqual({ min: Math.min(...all), max: Math.max(...all) });
    const ref = await runOrt(bytes, { x: new ort.Tensor('float32', all, [4, 2, 6, 6]) });
    const y = ref.y.data as Float32Array;
    expect(ranges.get('y')!.min).toBe(0);
    expect(ranges.get('y')!.max).toBeCloseTo(Math.max(...y), 5);
    expect(ranges.get('c')!.min).toBeLessThan(0);
    // Percentiles trim the tails but keep an exact 0 floor.
    const p = await calibrate(bytes, ['x', 'y'], batches, { method: 'percentile', percentile: 99 });
    expect(p.ranges.get('x')!.max).toBeLessThan(ranges.get('x')!.max);
    expect(p.ranges.get('x')!.min).toBeGreaterThan(ranges.get('x')!.min);
    expect(p.ranges.get('y')!.min).toBe(0);
  });

  it('says which tensor is missing', async () => {
    await expect(calibrate(reluConvModel(), ['nope'], [])).rejects.toThrow(/no tensor "nope"/);
  });
});

// ---- the int8 path on a tiny calibrated ProtoPNet ------------------------------------------------------------

describe('int8 export of a tiny calibrated small-CNN run', () => {
  const size = 32;
  let dir = '';
  let fp32 = new Uint8Array();
  let head: ProtoHead;
  let cnn: ReturnType<typeof createSmallCnn>;
  const calib: CalibrationBatch[] = [];
  const test: { data: Float32Array; dims: number[] } = { data: new Float32Array(), dims: [0] };

  beforeAll(async () => {
    dir = await tempDir('quantize');
    const addOn = [
      { channels: 32, activation: 'relu' as const },
      { channels: 16, activation: 'l2norm' as const },
    ];
    ({ cnn, head } = await randomSmallCnnRun(dir, {
      size,
      channels: [16, 32],
      addOn,
      prototypesPerClass: 3,
      classes: ['a', 'b', 'c', 'd'],
      cnnSeed: 5,
      headSeed: 13,
    }));
    await exportOnnx(dir, join(dir, 'fp32.onnx'));
    fp32 = new Uint8Array(await readFile(join(dir, 'fp32.onnx')));
    for (let i = 0; i < 4; i++)
      calib.push({ image: { data: randomValues(8 * 3 * size * size, 100 + i), dims: [8, 3, size, size] } });
    test.data = randomValues(32 * 3 * size * size, 7);
    test.dims = [32, 3, size, size];
  });

  afterAll(async () => {
    head.dispose();
    await cnn.dispose();
    await cleanup(dir);
  });

  const logitsOf = async (bytes: Uint8Array): Promise<Float32Array> =>
    (await runOrt(bytes, { image: new ort.Tensor('float32', test.data, test.dims) })).logits.data as Float32Array;

  it('asks for the ranges of the backbone and add-on Conv inputs and outputs, never the prototype layer', () => {
    const t = quantizationTargets(fp32);
    expect(t).toContain('image');
    expect(t.some((n) => n.includes('prototypes') || n.includes('zp_x2'))).toBe(false);
    // 4 backbone convs + 2 add-on convs: the first reads the image, each Relu output feeds the next conv.
    expect(t.length).toBeGreaterThanOrEqual(7);
  });

  for (const format of ['qoperator', 'qdq'] as const) {
    for (const weights of ['per-channel', 'per-tensor'] as const) {
      it(`${format}, ${weights} weights: int8 initialisers, a smaller file, outputs near fp32`, async () => {
        const { ranges } = await calibrate(fp32, quantizationTargets(fp32), calib);
        const q = quantizeStatic(fp32, ranges, { format, weights });
        expect(checkModel(q.bytes).problems).toEqual([]);
        expect(q.quantized).toHaveLength(6);
        expect(q.foldedRelu).toBe(5); // every conv but the l2norm add-on is followed by a Relu
        const sum = summarizeModel(q.bytes);
        if (format === 'qoperator') {
          expect(sum.ops.QLinearConv).toBe(6);
          expect(sum.ops.Conv).toBe(1); // the prototype layer
          expect(sum.ops.Relu).toBe(1); // the distance clamp; every conv Relu is folded
        } else {
          expect(sum.ops.QLinearConv ?? 0).toBe(0);
          expect(sum.ops.Conv).toBe(7);
          expect(sum.ops.DequantizeLinear).toBeGreaterThanOrEqual(18); // weights, biases, activations
        }
        const m = decodeModel(q.bytes);
        const int8 = m.graph.initializers.filter((t) => t.dataType === OnnxDataType.INT8 && t.dims.length === 4);
        expect(int8).toHaveLength(6);
        expect(m.graph.initializers.find((t) => t.name.includes('prototypes'))!.dataType).toBe(OnnxDataType.FLOAT);
        // 432 + 2304 + 4608 + 9216 backbone + 1024 + 512 add-on weights, plus per-channel zero points.
        expect(sum.weightBytes.int8).toBeGreaterThanOrEqual(18_096);
        expect(q.bytes.length).toBeLessThan(fp32.length * 0.6);

        const ref = await logitsOf(fp32);
        const got = await logitsOf(q.bytes);
        const span = Math.max(...ref) - Math.min(...ref);
        expect(maxAbsDiff(got, ref) / span).toBeLessThan(0.05);
        const agree = argmax(got, 32).filter((v, i) => v === argmax(ref, 32)[i]).length;
        expect(agree).toBeGreaterThanOrEqual(30);
      });
    }
  }

  it('QOperator and QDQ compute the same int8 model', async () => {
    const { ranges } = await calibrate(fp32, quantizationTargets(fp32), calib);
    const a = await logitsOf(quantizeStatic(fp32, ranges, { format: 'qoperator' }).bytes);
    const b = await logitsOf(quantizeStatic(fp32, ranges, { format: 'qdq' }).bytes);
    const span = Math.max(...a) - Math.min(...a);
    expect(maxAbsDiff(a, b) / span).toBeLessThan(0.01);
  });

  it('weight-only int8 keeps float activations and stays closer to fp32', async () => {
    const w = quantizeWeightsOnly(fp32);
    expect(w.quantized).toHaveLength(6);
    // Cast → Mul, which onnxruntime folds at load (a DequantizeLinear of a constant runs every time).
    expect(count(w.bytes, 'DequantizeLinear')).toBe(0);
    expect(count(w.bytes, 'Cast') - count(fp32, 'Cast')).toBe(6);
    expect(count(w.bytes, 'QuantizeLinear')).toBe(0);
    const ref = await logitsOf(fp32);
    const span = Math.max(...ref) - Math.min(...ref);
    expect(maxAbsDiff(await logitsOf(w.bytes), ref) / span).toBeLessThan(0.02);
  });

  it('int8FromFp32: int8 backbone, weight-only add-ons, float prototypes and last layer; same in onnxruntime-web', async () => {
    const r = await int8FromFp32(fp32, calib);
    expect(r.quantized).toHaveLength(4);
    expect(r.weightOnly).toHaveLength(2);
    const sum = summarizeModel(r.bytes);
    expect(sum.ops.QLinearConv).toBe(4);
    expect(sum.ops.MatMul).toBe(1);
    expect(r.bytes.length).toBeLessThan(fp32.length * 0.6);
    const ref = await logitsOf(fp32);
    const got = await logitsOf(r.bytes);
    const agree = argmax(got, 32).filter((v, i) => v === argmax(ref, 32)[i]).length;
    expect(agree).toBeGreaterThanOrEqual(30);
    const web = await createWebSession(r.bytes);
    try {
      const out = await web.run({ image: new ort.Tensor('float32', test.data, test.dims) }, ['logits']);
      expect(maxAbsDiff(out.logits.data as Float32Array, got)).toBeLessThan(1e-3);
    } finally {
      await web.release();
    }
  });

  it("backbone 'weight-only' (fine-tuned backbones): every conv's weights int8, float compute, closer to fp32", async () => {
    const r = await int8FromFp32(fp32, [], { backbone: 'weight-only' });
    expect(r.quantized).toHaveLength(0); // nothing static: no calibration read
    expect(r.weightOnly).toHaveLength(6); // 4 backbone + 2 add-on convs
    expect(summarizeModel(r.bytes).ops.QLinearConv ?? 0).toBe(0);
    expect(r.bytes.length).toBeLessThan(fp32.length * 0.6);
    const ref = await logitsOf(fp32);
    const span = Math.max(...ref) - Math.min(...ref);
    expect(maxAbsDiff(await logitsOf(r.bytes), ref) / span).toBeLessThan(0.02);
  });
});

// ---- exact float emulation of QLinearConv --------------------------------------------------------------------

describe("tapForCompute 'float'", () => {
  it('runs the tapped backbone on float kernels: the floatCompute numbers, no quantised output left', async () => {
    const src = tinyQOperator();
    const x = randomValues(2 * 3 * 81, 24, 1.5);
    const t = tapForCompute(insertTap(src, { tap: 'a3' }), 'float');
    expect(t.rawOutput).toBeUndefined();
    expect(t.quantization).toBeUndefined();
    expect(count(t.bytes, 'QLinearConv')).toBe(0);
    const viaFloat = await runOutput(floatCompute(src, { weights: 'float' }), x, [2, 3, 9, 9], 'y', 'node');
    for (const runtime of ['node', 'web'] as const) {
      // Float kernels: wasm sums in another order than native.
      expect(
        maxAbsDiff(
          Float32Array.from(await runOutput(t.bytes, x, [2, 3, 9, 9], t.floatOutput, runtime)),
          Float32Array.from(viaFloat),
        ),
        runtime,
      ).toBeLessThanOrEqual(runtime === 'node' ? 0 : 1e-5);
    }
    const int8 = await runOutput(src, x, [2, 3, 9, 9], 'y', 'node');
    expect(maxAbsDiff(Float32Array.from(int8), Float32Array.from(viaFloat))).toBeGreaterThan(0);
  });
});

describe('rewriteForWasm', () => {
  const x = randomValues(4 * 3 * 81, 21, 1.5);
  const dims = [4, 3, 9, 9];

  it('emulates each QLinearConv kind in float with bit-identical uint8 outputs (onnxruntime-node and -web)', async () => {
    const src = tinyQOperator();
    // Expose every uint8 activation.
    const m = decodeModel(src);
    const probe = encodeModel({
      ...m,
      graph: {
        ...m.graph,
        outputs: [...m.graph.outputs, ...['a1', 'a2', 'a3'].map((t) => makeValueInfo(t, OnnxDataType.UINT8))],
      },
    });
    const r = rewriteForWasm(probe, { kinds: ['depthwise', 'pointwise', 'spatial'] });
    expect(r.rewritten).toEqual({ depthwise: 1, pointwise: 1, spatial: 1 });
    expect(r.skipped).toEqual([]);
    expect(count(r.bytes, 'QLinearConv')).toBe(0);
    expect(count(r.bytes, 'Conv')).toBe(3);
    expect(count(r.bytes, 'Sub')).toBe(1); // only the first conv's input has a non-zero zero point
    // Integer weights stay int8 in the file.
    const inits = decodeModel(r.bytes).graph.initializers;
    expect(inits.filter((t) => t.dataType === OnnxDataType.FLOAT && t.dims.length === 4 && t.dims[0] > 1)).toHaveLength(
      0,
    );
    expect(inits.filter((t) => t.dataType === OnnxDataType.INT8 && t.dims.length === 4)).toHaveLength(3);
    for (const t of ['a1', 'a2', 'a3']) {
      const ref = await runOutput(probe, x, dims, t, 'node', 'disabled');
      expect(ref.some((v) => v > 0 && v < 255)).toBe(true);
      expect(await runOutput(r.bytes, x, dims, t, 'node', 'all')).toEqual(ref);
      expect(await runOutput(r.bytes, x, dims, t, 'node', 'disabled')).toEqual(ref);
      expect(await runOutput(r.bytes, x, dims, t, 'web', 'all')).toEqual(ref);
    }
  });

  it('by default rewrites only depthwise convs, and leaves convs whose accumulators could pass 2^24', () => {
    const r = rewriteForWasm(tinyQOperator());
    expect(r.rewritten).toEqual({ depthwise: 1, pointwise: 0, spatial: 0 });
    expect(count(r.bytes, 'QLinearConv')).toBe(2);
    // A 1x1 conv over 1100 channels: 1100 * 255 * 127 > 2^24.
    const wide = encodeModel(
      makeModel(
        makeGraph({
          nodes: [
            makeNode('QLinearConv', ['x', 's', 'z', 'w', 's', 'wz', 's', 'z'], ['y'], {
              attributes: [makeAttribute('kernel_shape', [1, 1])],
            }),
          ],
          initializers: [
            makeTensor('s', OnnxDataType.FLOAT, [], [0.1]),
            makeTensor('z', OnnxDataType.UINT8, [], [0]),
            makeTensor('w', OnnxDataType.INT8, [1, 1100, 1, 1], new Array(1100).fill(127)),
            makeTensor('wz', OnnxDataType.INT8, [], [0]),
          ],
          inputs: [makeValueInfo('x', OnnxDataType.UINT8, [1, 1100, 1, 1])],
          outputs: [makeValueInfo('y', OnnxDataType.UINT8, [1, 1, 1, 1])],
        }),
        { '': 13 },
        7,
      ),
    );
    const w = rewriteForWasm(wide, { kinds: ['pointwise'] });
    expect(w.rewritten.pointwise).toBe(0);
    expect(w.skipped).toHaveLength(1);
  });

  it('floatCompute runs the QOperator net in float: close to, not equal to, the int8 outputs', async () => {
    const src = tinyQOperator();
    // Inside the input's uint8 range [-2.4, 2.7]: the float version does not saturate there.
    const x = Float32Array.from(randomValues(4 * 3 * 81, 22), (v) => Math.max(-2, Math.min(2, v)));
    const f = floatCompute(src, { weights: 'int8' });
    expect(count(f, 'QLinearConv')).toBe(0);
    expect(count(f, 'Conv')).toBe(3);
    const a = (await runOrt(src, { x: new ort.Tensor('float32', x, dims) })).y.data as Float32Array;
    const b = (await runOrt(f, { x: new ort.Tensor('float32', x, dims) })).y.data as Float32Array;
    const diff = maxAbsDiff(a, b);
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThan(0.04 * 6); // a few output steps (scale 0.04)
    // Stored weights: int8 (Cast → Sub → Mul, folded at load), or float32; the same numbers.
    expect(
      decodeModel(f).graph.initializers.filter((t) => t.dataType === OnnxDataType.INT8 && t.dims.length === 4),
    ).toHaveLength(2);
    const ff = floatCompute(src, { weights: 'float' });
    expect((await runOrt(ff, { x: new ort.Tensor('float32', x, dims) })).y.data).toEqual(b);
    expect(
      decodeModel(ff).graph.initializers.filter((t) => t.dataType === OnnxDataType.FLOAT && t.dims.length === 4),
    ).toHaveLength(3);
    expect(
      Array.from(tensorValues(decodeModel(ff).graph.initializers.find((t) => t.name.startsWith('w3'))!).slice(0, 2)),
    ).toEqual(
      Array.from(tensorValues(decodeModel(src).graph.initializers.find((t) => t.name === 'w3')!).slice(0, 2), (v) =>
        Math.fround((v - 128) * Math.fround(0.01)),
      ),
    );
  });

  describe.skipIf(!HAS_MOBILENET)(
    `on the real MobileNetV2-12 int8${HAS_MOBILENET ? '' : ` (skipped: ${NO_DATA_NOTE})`}`,
    () => {
      it('keeps the tapped feature map bit for bit in onnxruntime-node and -web', async () => {
        const t = insertTap(await readFile(MOBILENET_ONNX), { tap: 'auto' });
        const r = rewriteForWasm(t.bytes);
        expect(r.rewritten.depthwise).toBe(17);
        const img = randomValues(3 * 224 * 224, 5, 1.2);
        const ref = await runOutput(t.bytes, img, [1, 3, 224, 224], t.rawOutput!, 'node');
        expect(await runOutput(r.bytes, img, [1, 3, 224, 224], t.rawOutput!, 'node')).toEqual(ref);
        expect(await runOutput(r.bytes, img, [1, 3, 224, 224], t.rawOutput!, 'web')).toEqual(ref);
      });
    },
  );
});

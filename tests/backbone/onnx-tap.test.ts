import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { decodeModel } from '../../trainer/src/onnx/onnx-proto.ts';
import { insertTap, locateTap } from '../../trainer/src/backbone/onnx-tap.ts';
import { TINY_CONV, TINY_Q, nchwToNhwc, testValues, tinyConvRelu, tinyFloatModel, tinyQuantModel } from './helpers.ts';

async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  try {
    return (await s.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await s.release();
  }
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(tol);
}

describe('tap on a float model', () => {
  const { cIn, cOut, side } = TINY_CONV;
  const n = 2;
  const x = testValues(n * cIn * side * side);

  it("'auto' finds the GlobalAveragePool input", () => {
    expect(locateTap(decodeModel(tinyFloatModel()).graph, 'auto')).toEqual({ tensor: 'relu' });
  });

  it('exposes the Relu output and drops the classifier nodes', async () => {
    const t = insertTap(tinyFloatModel(), { tap: 'auto' });
    expect(t.quantization).toBeUndefined();
    expect(t.floatOutput).toBe('relu');
    const g = decodeModel(t.bytes).graph;
    expect(g.nodes.map((nd) => nd.opType)).toEqual(['Conv', 'Relu']);
    expect(g.outputs.map((o) => o.name)).toEqual(['relu']);
    const out = await run(t.bytes, { X: new ort.Tensor('float32', x, [n, cIn, side, side]) });
    expect(out.relu.dims).toEqual([n, cOut, side, side]);
    expectClose(out.relu.data as Float32Array, tinyConvRelu(x, n));
  });

  it('can keep the original output next to the tap', async () => {
    const t = insertTap(tinyFloatModel(), { tap: 'conv', keepOriginalOutputs: true });
    const out = await run(t.bytes, { X: new ort.Tensor('float32', x, [n, cIn, side, side]) });
    expect(Object.keys(out).sort()).toEqual(['Y', 'conv']);
    expect(out.Y.dims).toEqual([n, cOut]);
  });

  it('wraps the graph in NHWC transposes', async () => {
    const t = insertTap(tinyFloatModel(), { tap: 'auto', nhwc: true });
    const out = await run(t.bytes, {
      [t.input]: new ort.Tensor('float32', nchwToNhwc(x, n, cIn, side, side), [n, side, side, cIn]),
    });
    const y = out[t.floatOutput];
    expect(y.dims).toEqual([n, side, side, cOut]);
    expectClose(y.data as Float32Array, nchwToNhwc(tinyConvRelu(x, n), n, cOut, side, side));
  });

  it('names unknown taps and graphs without a pool', () => {
    expect(() => insertTap(tinyFloatModel(), { tap: 'nope' })).toThrow(/no tensor named "nope"/);
    expect(() => insertTap(tinyQuantModel(), { tap: 'auto' })).not.toThrow();
    const noPool = insertTap(tinyFloatModel(), { tap: 'conv' }).bytes;
    expect(() => insertTap(noPool, { tap: 'auto' })).toThrow(/no GlobalAveragePool/);
  });
});

describe('tap on a quantised model', () => {
  const { scale, zeroPoint, channels, side } = TINY_Q;
  const n = 2;
  const x = testValues(n * channels * side * side, 10);
  const expectedQ = Array.from(x, (v) => Math.min(255, Math.max(0, Math.round(v / scale) + zeroPoint)));

  it('finds scale and zero point of the QLinearGlobalAveragePool input', () => {
    const loc = locateTap(decodeModel(tinyQuantModel()).graph, 'auto');
    expect(loc.tensor).toBe('xq');
    expect(loc.quantization).toMatchObject({ zeroPoint, elemType: 2, scaleName: 'x_scale', zeroPointName: 'x_zp' });
    expect(loc.quantization!.scale).toBeCloseTo(scale, 7);
  });

  it('exposes the raw uint8 tensor and its dequantised floats', async () => {
    const t = insertTap(tinyQuantModel(), { tap: 'auto' });
    expect(t.rawOutput).toBe('xq');
    const out = await run(t.bytes, { X: new ort.Tensor('float32', x, [n, channels, side, side]) });
    const raw = out[t.rawOutput!];
    expect(raw.type).toBe('uint8');
    expect(Array.from(raw.data as Uint8Array)).toEqual(expectedQ);
    const f = out[t.floatOutput];
    expect(f.type).toBe('float32');
    expectClose(
      f.data as Float32Array,
      expectedQ.map((q) => (q - zeroPoint) * Math.fround(scale)),
      1e-6,
    );
    expect(Object.keys(out).sort()).toEqual([t.floatOutput, t.rawOutput].sort());
  });

  it('taps by name and transposes to NHWC', async () => {
    const t = insertTap(tinyQuantModel(), { tap: 'xq', nhwc: true });
    const out = await run(t.bytes, {
      [t.input]: new ort.Tensor('float32', nchwToNhwc(x, n, channels, side, side), [n, side, side, channels]),
    });
    expect(out[t.rawOutput!].dims).toEqual([n, side, side, channels]);
    expect(Array.from(out[t.rawOutput!].data as Uint8Array)).toEqual(
      Array.from(nchwToNhwc(expectedQ, n, channels, side, side)),
    );
  });
});

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { applyGraphEdits, graphEditsKey } from '../../trainer/src/backbone/graph-edits.ts';
import { gaussianTaps, insertInputBlur } from '../../trainer/src/backbone/input-blur.ts';
import { onnxReceptiveField } from '../../trainer/src/backbone/receptive-field.ts';
import {
  encodeModel,
  makeAttribute,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  OnnxDataType,
} from '../../trainer/src/onnx/onnx-proto.ts';

const SIDE = 12;
/** x [1,3,12,12] → Identity → y: the blur is all the graph computes. */
const identity = makeGraph({
  nodes: [makeNode('Identity', ['x'], ['y'])],
  inputs: [makeValueInfo('x', OnnxDataType.FLOAT, [1, 3, SIDE, SIDE])],
  outputs: [makeValueInfo('y', OnnxDataType.FLOAT)],
});

/** Direct zero-padded 2-D convolution of one channel with the outer product of `taps` (the reference). */
function blurChannel(x: Float64Array, taps: number[]): Float64Array {
  const r = (taps.length - 1) / 2;
  const y = new Float64Array(SIDE * SIDE);
  for (let i = 0; i < SIDE; i++)
    for (let j = 0; j < SIDE; j++) {
      let acc = 0;
      for (let a = -r; a <= r; a++)
        for (let b = -r; b <= r; b++) {
          const [u, v] = [i + a, j + b];
          if (u >= 0 && u < SIDE && v >= 0 && v < SIDE) acc += x[u * SIDE + v] * taps[a + r] * taps[b + r];
        }
      y[i * SIDE + j] = acc;
    }
  return y;
}

describe('input blur', () => {
  it('uses a normalised Gaussian truncated at 2 sigma, at least 3 taps', () => {
    const t = gaussianTaps(1);
    expect(t).toHaveLength(5);
    expect(t.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(t[0]).toBeCloseTo(t[4], 15);
    expect(t[1] / t[2]).toBeCloseTo(Math.exp(-0.5), 12);
    expect(gaussianTaps(0.3)).toHaveLength(3);
    expect(gaussianTaps(2)).toHaveLength(9);
    for (const bad of [0, -1, 9, Number.NaN]) expect(() => gaussianTaps(bad)).toThrow(/sigma must be in \(0, 8\]/);
  });

  it('blurs every channel on its own, zero-padded at the borders (onnxruntime against a direct reference)', async () => {
    const x = Float32Array.from({ length: 3 * SIDE * SIDE }, (_, i) => Math.sin(i * 0.71) + (i % 7) * 0.2);
    const session = await ort.InferenceSession.create(encodeModel(makeModel(insertInputBlur(identity, 1), { '': 13 })));
    const y = (await session.run({ x: new ort.Tensor('float32', x, [1, 3, SIDE, SIDE]) })).y as ort.Tensor;
    expect(y.dims).toEqual([1, 3, SIDE, SIDE]);
    const got = y.data as Float32Array;
    const taps = gaussianTaps(1);
    let worst = 0;
    for (let c = 0; c < 3; c++) {
      const want = blurChannel(Float64Array.from(x.subarray(c * SIDE * SIDE, (c + 1) * SIDE * SIDE)), taps);
      want.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - got[c * SIDE * SIDE + i]))));
    }
    expect(worst).toBeLessThan(1e-5);
    // A constant image stays constant inside, and fades towards the zero padding at a corner.
    const ones = new Float32Array(3 * SIDE * SIDE).fill(1);
    const flat = ((await session.run({ x: new ort.Tensor('float32', ones, [1, 3, SIDE, SIDE]) })).y as ort.Tensor)
      .data as Float32Array;
    expect(flat[5 * SIDE + 5]).toBeCloseTo(1, 6);
    expect(flat[0]).toBeCloseTo((taps[2] + taps[3] + taps[4]) ** 2, 6);
  });

  it('feeds every consumer of the input, leaves the rest of the graph alone and widens the receptive field', () => {
    const w = makeTensor('w', OnnxDataType.FLOAT, [1, 3, 3, 3], new Array(27).fill(0.1));
    const conv = makeNode('Conv', ['x', 'w'], ['y'], {
      attributes: [makeAttribute('kernel_shape', [3, 3]), makeAttribute('strides', [2, 2])],
    });
    const g = makeGraph({
      nodes: [conv, makeNode('Identity', ['x'], ['z'])],
      inputs: [makeValueInfo('x', OnnxDataType.FLOAT, [1, 3, SIDE, SIDE])],
      outputs: [makeValueInfo('y', OnnxDataType.FLOAT), makeValueInfo('z', OnnxDataType.FLOAT)],
      initializers: [w],
    });
    const edited = applyGraphEdits(g, { inputBlur: 2 });
    expect(edited.nodes.map((n) => n.opType)).toEqual(['Conv', 'Conv', 'Identity']);
    expect(edited.nodes[0].inputs[0]).toBe('x');
    expect(edited.nodes.slice(1).map((n) => n.inputs[0])).toEqual(['x__blurred', 'x__blurred']);
    expect(edited.nodes[1].inputs[1]).toBe('w');
    expect(edited.initializers.map((t) => [t.name, t.dims])).toEqual([
      ['w', [1, 3, 3, 3]],
      ['x__blur_kernel', [3, 1, 9, 9]],
    ]);
    // sigma 2: 9 taps add 8 pixels to the receptive field; the stride is unchanged.
    expect(onnxReceptiveField(g, 'y')).toMatchObject({ size: 3, stride: 2 });
    expect(onnxReceptiveField(edited, 'y')).toMatchObject({ size: 11, stride: 2 });
    expect(applyGraphEdits(g, {})).toBe(g);
    expect(applyGraphEdits(g, { inputBlur: 0 })).toBe(g);
  });

  it('keys the backbone apart by its edits', () => {
    expect(graphEditsKey({})).toBe('');
    const keys = [
      { inputBlur: 1 },
      { inputBlur: 2 },
      { outputStride: 16 as const },
      { outputStride: 16 as const, inputBlur: 1 },
    ];
    expect(new Set(keys.map(graphEditsKey)).size).toBe(4);
  });

  it('refuses a graph whose image input it cannot blur, naming it', () => {
    const nhwcUnknown = makeGraph({
      nodes: [makeNode('Identity', ['x'], ['y'])],
      inputs: [makeValueInfo('x', OnnxDataType.FLOAT, ['N', 'C', SIDE, SIDE])],
      outputs: [makeValueInfo('y', OnnxDataType.FLOAT)],
    });
    expect(() => insertInputBlur(nhwcUnknown, 1)).toThrow(/input "x" must be a float NCHW tensor/);
    const two = makeGraph({
      nodes: [makeNode('Add', ['x', 'b'], ['y'])],
      inputs: [
        makeValueInfo('x', OnnxDataType.FLOAT, [1, 3, SIDE, SIDE]),
        makeValueInfo('b', OnnxDataType.FLOAT, [1, 3, SIDE, SIDE]),
      ],
      outputs: [makeValueInfo('y', OnnxDataType.FLOAT)],
    });
    expect(() => insertInputBlur(two, 1)).toThrow(/2 non-constant inputs/);
  });
});

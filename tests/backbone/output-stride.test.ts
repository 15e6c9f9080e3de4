import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { decodeMessage, repeatedVarints, stringOf, toInt64 } from '../../trainer/src/onnx/protobuf-wire.ts';
import {
  encodeModel,
  makeAttribute,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  OnnxDataType,
  type OnnxNode,
} from '../../trainer/src/onnx/onnx-proto.ts';
import { setOutputStride } from '../../trainer/src/backbone/output-stride.ts';
import { onnxReceptiveField } from '../../trainer/src/backbone/receptive-field.ts';
import { MOBILENET_ONNX, HAS_MOBILENET, NO_DATA_NOTE } from './helpers.ts';
import { loadOnnxBackbone } from '../../trainer/src/backbone/onnx-backbone.ts';
import { IMAGENET_224 } from '@protoatlas/shared';

/** x [1,1,16,16] → conv 3x3 s2 → conv 3x3 s2 → depthwise 3x3 s1 → y: output stride 4. */
const W1 = Array.from({ length: 9 }, (_, i) => (i % 3) - 1 + 0.25 * i);
const W2 = Array.from({ length: 9 }, (_, i) => Math.sin(i + 1));
const W3 = Array.from({ length: 9 }, (_, i) => Math.cos(2 * i));
const conv = (x: string, y: string, w: string, s: number) =>
  makeNode('Conv', [x, w], [y], {
    name: y,
    attributes: [
      makeAttribute('kernel_shape', [3, 3]),
      makeAttribute('strides', [s, s]),
      makeAttribute('pads', [1, 1, 1, 1]),
      makeAttribute('group', 1),
    ],
  });
const graph = makeGraph({
  nodes: [conv('x', 'a', 'w1', 2), conv('a', 'b', 'w2', 2), conv('b', 'y', 'w3', 1)],
  inputs: [makeValueInfo('x', OnnxDataType.FLOAT, [1, 1, 16, 16])],
  outputs: [makeValueInfo('y', OnnxDataType.FLOAT)],
  initializers: [
    makeTensor('w1', OnnxDataType.FLOAT, [1, 1, 3, 3], W1),
    makeTensor('w2', OnnxDataType.FLOAT, [1, 1, 3, 3], W2),
    makeTensor('w3', OnnxDataType.FLOAT, [1, 1, 3, 3], W3),
  ],
});

const ints = (node: OnnxNode, name: string) => {
  for (const a of node.attributes) {
    const f = decodeMessage(a);
    if (stringOf(f, 1) === name) return repeatedVarints(f, 8).map(toInt64);
  }
  return null;
};

/** Direct 3x3 convolution, zero padding `pad`, dilation `d`, stride `s` (the reference). */
function conv2d(
  x: Float64Array,
  side: number,
  w: number[],
  s: number,
  d: number,
  pad: number,
): { y: Float64Array; side: number } {
  const out = Math.floor((side + 2 * pad - d * 2 - 1) / s) + 1;
  const y = new Float64Array(out * out);
  for (let i = 0; i < out; i++)
    for (let j = 0; j < out; j++) {
      let acc = 0;
      for (let r = 0; r < 3; r++)
        for (let c = 0; c < 3; c++) {
          const yi = i * s - pad + r * d;
          const xj = j * s - pad + c * d;
          if (yi >= 0 && yi < side && xj >= 0 && xj < side) acc += x[yi * side + xj] * w[r * 3 + c];
        }
      y[i * out + j] = acc;
    }
  return { y, side: out };
}

describe('output stride by dilation', () => {
  it('keeps stride 1 where the map would pass the output stride and dilates every later kernel', () => {
    const g = setOutputStride(graph, 2);
    const [n1, n2, n3] = g.nodes;
    expect(ints(n1, 'strides')).toEqual([2, 2]);
    expect(ints(n1, 'dilations')).toBeNull();
    expect(ints(n2, 'strides')).toEqual([1, 1]);
    // The skipped conv itself keeps rate 1; only later kernels are dilated, by the stride skipped.
    expect(ints(n2, 'dilations')).toBeNull();
    expect(ints(n3, 'dilations')).toEqual([2, 2]);
    expect(ints(n3, 'pads')).toEqual([2, 2, 2, 2]);
    // A stride the network never reaches changes nothing.
    expect(setOutputStride(graph, 8)).toBe(graph);
  });

  it('computes the dilated network (onnxruntime against a direct reference), on a grid twice as fine', async () => {
    const x = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i * 0.37) + (i % 5) * 0.1);
    const session = await ort.InferenceSession.create(encodeModel(makeModel(setOutputStride(graph, 2), { '': 13 })));
    const out = (await session.run({ x: new ort.Tensor('float32', x, [1, 1, 16, 16]) })).y as ort.Tensor;
    expect(out.dims).toEqual([1, 1, 8, 8]);
    const a = conv2d(Float64Array.from(x), 16, W1, 2, 1, 1);
    const b = conv2d(a.y, a.side, W2, 1, 1, 1);
    const y = conv2d(b.y, b.side, W3, 1, 2, 2);
    expect(y.side).toBe(8);
    const got = out.data as Float32Array;
    let diff = 0;
    y.y.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - got[i]))));
    expect(diff).toBeLessThan(1e-5);
    // The published network gives 4x4.
    const plain = await ort.InferenceSession.create(encodeModel(makeModel(graph, { '': 13 })));
    expect(((await plain.run({ x: new ort.Tensor('float32', x, [1, 1, 16, 16]) })).y as ort.Tensor).dims).toEqual([
      1, 1, 4, 4,
    ]);
  });

  it('receptive fields count the dilated kernel span and the finer stride', () => {
    // Published: 3 → 3+2*2=7 (stride 4) → 7+2*4=15.  Dilated: 3 → 7 (stride 2) → 7 + (5-1)*2 = 15, stride 2.
    expect(onnxReceptiveField(graph, 'y')).toMatchObject({ size: 15, stride: 4 });
    expect(onnxReceptiveField(setOutputStride(graph, 2), 'y')).toMatchObject({ size: 15, stride: 2 });
  });

  it.skipIf(!HAS_MOBILENET)(
    `MobileNetV2 at output stride 16 gives a 14x14x1280 map whose mean is close to the published 7x7 map's (${HAS_MOBILENET ? 'data present' : NO_DATA_NOTE})`,
    async () => {
      const x = Float32Array.from({ length: 224 * 224 * 3 }, (_, i) => Math.sin(i * 0.001) * 1.5);
      const b32 = await loadOnnxBackbone({
        path: MOBILENET_ONNX,
        preprocess: IMAGENET_224,
        compute: 'float',
        threads: 1,
      });
      const b16 = await loadOnnxBackbone({
        path: MOBILENET_ONNX,
        preprocess: IMAGENET_224,
        compute: 'float',
        threads: 1,
        outputStride: 16,
      });
      expect(b32.featureShape).toEqual([7, 7, 1280]);
      expect(b16.featureShape).toEqual([14, 14, 1280]);
      expect(b16.hash).not.toBe(b32.hash);
      const [f32, f16] = [await b32.extract(x, 1), await b16.extract(x, 1)];
      // Same weights, so pooled features agree closely (cosine), though not exactly.
      const pool = (f: Float32Array, cells: number) => {
        const p = new Float64Array(1280);
        for (let k = 0; k < cells; k++) for (let c = 0; c < 1280; c++) p[c] += f[k * 1280 + c] / cells;
        return p;
      };
      const [p32, p16] = [pool(f32, 49), pool(f16, 196)];
      let dot = 0;
      let n32 = 0;
      let n16 = 0;
      for (let c = 0; c < 1280; c++) {
        dot += p32[c] * p16[c];
        n32 += p32[c] ** 2;
        n16 += p16[c] ** 2;
      }
      expect(dot / Math.sqrt(n32 * n16)).toBeGreaterThan(0.8);
      await b32.dispose();
      await b16.dispose();
    },
  );
});

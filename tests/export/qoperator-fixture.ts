/**
 * A tiny int8 QOperator graph with MobileNetV2's shapes and the helpers that run
 * and inspect ONNX models in both onnxruntimes: shared by the deployed int8 tests
 * (quantize.test.ts) and the measured-only variants' tests (tests/bench/).
 */
import * as ort from 'onnxruntime-node';
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
} from '../../trainer/src/onnx/onnx-proto.ts';
import { createWebSession } from '../../trainer/src/export/ort-web.ts';
import { randomValues } from './helpers.ts';

const ops = (bytes: Uint8Array): string[] => decodeModel(bytes).graph.nodes.map((n) => n.opType);
/** How many nodes of type `op` the model has. */
export const count = (bytes: Uint8Array, op: string): number => ops(bytes).filter((o) => o === op).length;

/** One output of a model run on its first input, in onnxruntime-node or -web. */
export async function runOutput(
  bytes: Uint8Array,
  x: Float32Array,
  dims: number[],
  output: string,
  runtime: 'node' | 'web',
  level: 'disabled' | 'all' = 'all',
): Promise<number[]> {
  const s =
    runtime === 'web'
      ? await createWebSession(bytes, { graphOptimizationLevel: level })
      : await ort.InferenceSession.create(bytes, { graphOptimizationLevel: level, logSeverityLevel: 3 });
  try {
    const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x, dims) }, [output]);
    return Array.from(r[output].data as Uint8Array | Float32Array);
  } finally {
    await s.release();
  }
}

/**
 * A tiny QOperator net with the shapes MobileNetV2 has: x float [N,3,9,9] → QuantizeLinear (zero point 120)
 * → QLinearConv 3x3/2 pad 1 (3→8, per-channel, bias) → depthwise QLinearConv 3x3 pad 1 (8) → pointwise
 * QLinearConv (8→5, uint8 weights with zero point 128) → DequantizeLinear → y.
 */
export function tinyQOperator(): Uint8Array {
  const f = (name: string, dims: number[], v: number[]) => makeTensor(name, OnnxDataType.FLOAT, dims, v);
  const u8 = (name: string, v: number) => makeTensor(name, OnnxDataType.UINT8, [], [v]);
  const ints = (n: number, seed: number, lo: number, hi: number) =>
    Array.from(randomValues(n, seed), (v) => Math.max(lo, Math.min(hi, Math.round(v * 40))));
  const conv = (attrs: Uint8Array[]) => ({ attributes: attrs });
  const graph = makeGraph({
    nodes: [
      makeNode('QuantizeLinear', ['x', 'xs', 'xz'], ['xq']),
      makeNode(
        'QLinearConv',
        ['xq', 'xs', 'xz', 'w1', 'w1s', 'w1z', 'a1s', 'a1z', 'b1'],
        ['a1'],
        conv([
          makeAttribute('kernel_shape', [3, 3]),
          makeAttribute('strides', [2, 2]),
          makeAttribute('pads', [1, 1, 1, 1]),
        ]),
      ),
      makeNode(
        'QLinearConv',
        ['a1', 'a1s', 'a1z', 'w2', 'w2s', 'w2z', 'a2s', 'a2z', 'b2'],
        ['a2'],
        conv([makeAttribute('kernel_shape', [3, 3]), makeAttribute('pads', [1, 1, 1, 1]), makeAttribute('group', 8)]),
      ),
      makeNode(
        'QLinearConv',
        ['a2', 'a2s', 'a2z', 'w3', 'w3s', 'w3z', 'a3s', 'a3z'],
        ['a3'],
        conv([makeAttribute('kernel_shape', [1, 1])]),
      ),
      makeNode('DequantizeLinear', ['a3', 'a3s', 'a3z'], ['y']),
    ],
    initializers: [
      f('xs', [], [0.02]),
      u8('xz', 120),
      makeTensor('w1', OnnxDataType.INT8, [8, 3, 3, 3], ints(216, 1, -127, 127)),
      f(
        'w1s',
        [8],
        Array.from({ length: 8 }, (_, i) => 0.003 + 0.001 * i),
      ),
      makeTensor('w1z', OnnxDataType.INT8, [8], new Array(8).fill(0)),
      makeTensor('b1', OnnxDataType.INT32, [8], ints(8, 2, -2000, 2000)),
      f('a1s', [], [0.03]),
      u8('a1z', 0),
      makeTensor('w2', OnnxDataType.INT8, [8, 1, 3, 3], ints(72, 3, -127, 127)),
      f(
        'w2s',
        [8],
        Array.from({ length: 8 }, (_, i) => 0.01 + 0.002 * i),
      ),
      makeTensor('w2z', OnnxDataType.INT8, [8], new Array(8).fill(0)),
      makeTensor('b2', OnnxDataType.INT32, [8], ints(8, 4, -500, 500)),
      f('a2s', [], [0.05]),
      u8('a2z', 0),
      makeTensor(
        'w3',
        OnnxDataType.UINT8,
        [5, 8, 1, 1],
        ints(40, 5, -127, 127).map((v) => v + 128),
      ),
      f('w3s', [], [0.01]),
      u8('w3z', 128),
      f('a3s', [], [0.04]),
      u8('a3z', 100),
    ],
    inputs: [makeValueInfo('x', OnnxDataType.FLOAT, ['N', 3, 9, 9])],
    outputs: [makeValueInfo('y', OnnxDataType.FLOAT, ['N', 5, 5, 5])],
  });
  return encodeModel(makeModel(graph, { '': 13 }, 7));
}

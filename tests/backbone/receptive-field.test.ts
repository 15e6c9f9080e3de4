import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { receptiveFieldBox } from '@protoatlas/shared';
import {
  backboneReceptiveField,
  layersReceptiveField,
  onnxReceptiveField,
  smallCnnReceptiveField,
  tfSamePadding,
} from '../../trainer/src/backbone/receptive-field.ts';
import { createSmallCnn } from '../../trainer/src/backbone/small-cnn.ts';
import {
  makeAttribute,
  makeGraph,
  makeNode,
  makeTensor,
  makeValueInfo,
  OnnxDataType,
} from '../../trainer/src/onnx/onnx-proto.ts';
import { referenceDataDir } from '../../trainer/src/core/data-path.ts';
import { testValues } from './helpers.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('receptive fields', () => {
  it('TensorFlow "same" padding puts the odd pixel after', () => {
    expect(tfSamePadding(56, 3, 2)).toBe(0);
    expect(tfSamePadding(57, 3, 2)).toBe(1);
    expect(tfSamePadding(28, 3, 1)).toBe(1);
    expect(tfSamePadding(7, 1, 1)).toBe(0);
  });

  it.each([
    [2, { size: 43, stride: 8, start: 7.5 }],
    [1, { size: 15, stride: 8, start: 7.5 }],
  ] as const)(
    'small CNN with %i conv(s) per stage: the cells a pixel can influence are within the computed field',
    async (convsPerStage, expected) => {
      const rf = smallCnnReceptiveField(56, 3, convsPerStage);
      expect(rf).toEqual(expected);
      const cnn = createSmallCnn({ inputSize: 56, channels: [8, 8, 8], seed: 3, convsPerStage });
      const base = testValues(56 * 56 * 3, 2);
      const poked = base.slice();
      const [px, py] = [50, 10];
      for (let c = 0; c < 3; c++) poked[(py * 56 + px) * 3 + c] += 5;
      const [a, b] = [await cnn.extract(base, 1), await cnn.extract(poked, 1)];
      const changed = new Set<string>();
      for (let i = 0; i < 7; i++)
        for (let j = 0; j < 7; j++) {
          for (let k = 0; k < 8; k++)
            if (Math.abs(a[(i * 7 + j) * 8 + k] - b[(i * 7 + j) * 8 + k]) > 1e-6) changed.add(`${i},${j}`);
        }
      expect(changed.size).toBeGreaterThan(0);
      for (const key of changed) {
        const [row, col] = key.split(',').map(Number);
        const box = receptiveFieldBox(rf, row, col, 56, 56, 56);
        expect(
          px >= box.x && px < box.x + box.w && py >= box.y && py < box.y + box.h,
          `cell ${key} box ${JSON.stringify(box)}`,
        ).toBe(true);
      }
      // The cell whose field is centred nearest the pixel responds.
      expect(changed.has('0,5')).toBe(true);
      if (convsPerStage === 1) expect(changed.size).toBeLessThanOrEqual(4); // 15 px field: at most 2x2 cells
      await cnn.dispose();
    },
  );

  it('ONNX: composes convs and pools, keeps the widest branch at a residual Add', () => {
    const conv = (x: string, y: string, w: string, k: number, s: number, p: number) =>
      makeNode('Conv', [x, w], [y], {
        attributes: [
          makeAttribute('kernel_shape', [k, k]),
          makeAttribute('strides', [s, s]),
          makeAttribute('pads', [p, p, p, p]),
        ],
      });
    const graph = makeGraph({
      nodes: [
        conv('x', 'a', 'w1', 3, 2, 1), // size 3, stride 2
        conv('a', 'b', 'w2', 3, 1, 1), // size 7
        makeNode('Add', ['a', 'b'], ['c']), // widest: 7
        makeNode('MaxPool', ['c'], ['d'], {
          attributes: [makeAttribute('kernel_shape', [2, 2]), makeAttribute('strides', [2, 2])],
        }), // size 9, stride 4
        makeNode('Relu', ['d'], ['e']),
      ],
      initializers: [
        makeTensor('w1', OnnxDataType.FLOAT, [1, 1, 3, 3], new Float32Array(9)),
        makeTensor('w2', OnnxDataType.FLOAT, [1, 1, 3, 3], new Float32Array(9)),
      ],
      inputs: [makeValueInfo('x', OnnxDataType.FLOAT, [1, 1, 16, 16])],
      outputs: [makeValueInfo('e', OnnxDataType.FLOAT)],
    });
    expect(onnxReceptiveField(graph, 'e')).toEqual({ size: 9, stride: 4, start: 1.5 });
    expect(() => onnxReceptiveField(graph, 'nope')).toThrow(/not reachable/);
  });

  it('Keras layers: nested models, ZeroPadding2D and the cut layer', () => {
    const topo = {
      config: {
        layers: [
          {
            class_name: 'Model',
            config: {
              layers: [
                { class_name: 'InputLayer', config: { name: 'in' } },
                {
                  class_name: 'ZeroPadding2D',
                  config: {
                    name: 'pad',
                    padding: [
                      [0, 1],
                      [0, 1],
                    ],
                  },
                },
                {
                  class_name: 'Conv2D',
                  config: { name: 'c1', kernel_size: [3, 3], strides: [2, 2], padding: 'valid' },
                },
                {
                  class_name: 'DepthwiseConv2D',
                  config: { name: 'd1', kernel_size: [3, 3], strides: [1, 1], padding: 'same' },
                },
                {
                  class_name: 'Conv2D',
                  config: { name: 'after_cut', kernel_size: [5, 5], strides: [1, 1], padding: 'same' },
                },
              ],
            },
          },
        ],
      },
    };
    expect(layersReceptiveField(topo, 16, 'd1')).toEqual({ size: 7, stride: 2, start: 1.5 });
  });

  const mobilenet = join(referenceDataDir(), 'backbones/mobilenetv2-int8-onnx/mobilenetv2-12-int8.onnx');
  const noMobilenet = existsSync(mobilenet) ? '' : ` (skipped: ${mobilenet} not found; set PROTOPNET_DATA)`;
  const realTitle = `MobileNetV2 (int8 ONNX, ../shared/data): 491 px field, stride 32${noMobilenet}`;
  it.skipIf(!existsSync(mobilenet))(realTitle, async () => {
    expect(await backboneReceptiveField({ kind: 'onnx', tap: 'auto' }, mobilenet)).toEqual({
      size: 491,
      stride: 32,
      start: 0.5,
    });
  });
});

import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  OnnxDataType,
  decodeModel,
  encodeModel,
  makeGraph,
  makeModel,
  makeNode,
  makeValueInfo,
} from '../../trainer/src/onnx/onnx-proto.ts';
import { checkModel } from '../../trainer/src/onnx/check-graph.ts';
import { buildHeadModel, headExportWeights } from '../../trainer/src/export/head-graph.ts';
import type { HeadSpec } from '../../trainer/src/head/proto-head.ts';
import {
  TINY_HEAD,
  headReference,
  maxAbsDiff,
  randomHead,
  randomValues,
  runOrt,
  toNchw,
  useCpuBackend,
} from './helpers.ts';

beforeAll(useCpuBackend);

const B = 2;
const H = 3;
const W = 4; // H != W catches swapped spatial axes
const D = TINY_HEAD.inputChannels;

const ADD_ONS: [string, HeadSpec['addOn']][] = [
  ['relu → sigmoid (paper)', TINY_HEAD.addOn],
  [
    'relu → l2norm (cub200 preset)',
    [
      { channels: 10, activation: 'relu' },
      { channels: 5, activation: 'l2norm' },
    ],
  ],
  ['linear', [{ channels: 4, activation: 'linear' }]],
  ['no add-on', []],
];

describe('head graph vs the trainer head', () => {
  for (const [label, addOn] of ADD_ONS) {
    for (const opset of [13, 18]) {
      it(`${label}, opset ${opset}`, async () => {
        const head = randomHead({ ...TINY_HEAD, addOn }, 7);
        const features = randomValues(B * H * W * D, 3);
        const ref = headReference(head, features, [B, H, W, D]);
        const bytes = buildHeadModel(headExportWeights(head), { height: H, width: W, opset });
        expect(checkModel(bytes)).toEqual({ opset, problems: [] });
        const out = await runOrt(bytes, {
          features: new ort.Tensor('float32', toNchw(features, B, H, W, D), [B, D, H, W]),
        });
        const m = head.numPrototypes;
        expect(out.logits.dims).toEqual([B, TINY_HEAD.numClasses]);
        expect(out.similarities.dims).toEqual([B, m]);
        expect(out.distances.dims).toEqual([B, m, H, W]);
        expect(maxAbsDiff(out.logits.data as Float32Array, ref.logits)).toBeLessThan(1e-4);
        expect(maxAbsDiff(out.similarities.data as Float32Array, ref.similarities)).toBeLessThan(1e-4);
        expect(maxAbsDiff(out.distances.data as Float32Array, ref.distances)).toBeLessThan(1e-4);
        // Real values, not two zero tensors agreeing.
        expect(Math.max(...Array.from(ref.distances))).toBeGreaterThan(0.1);
        head.dispose();
      });
    }
  }

  it('refuses a head whose similarity averages several patches (head.similarityTopK), naming it', () => {
    const head = randomHead({ ...TINY_HEAD, similarityTopK: 2 }, 7);
    expect(() => headExportWeights(head)).toThrow(/averages each similarity over 2 patches \(head\.similarityTopK\)/);
    head.dispose();
  });

  it("exports the head's similarity epsilon (head.similarityEpsilon), not the paper's", async () => {
    const head = randomHead({ ...TINY_HEAD, similarityEpsilon: 0.1 }, 7);
    const features = randomValues(B * H * W * D, 3);
    const ref = headReference(head, features, [B, H, W, D]);
    const weights = headExportWeights(head);
    expect(weights.epsilon).toBe(0.1);
    const out = await runOrt(buildHeadModel(weights, { height: H, width: W, opset: 13 }), {
      features: new ort.Tensor('float32', toNchw(features, B, H, W, D), [B, D, H, W]),
    });
    const d = out.distances.data as Float32Array;
    const sims = out.similarities.data as Float32Array;
    // Prototype 0 of image 0: the similarity of its smallest distance, with eps 0.1.
    const d0 = Math.min(...Array.from(d.subarray(0, H * W)));
    expect(sims[0]).toBeCloseTo(Math.log((d0 + 1) / (d0 + 0.1)), 4);
    expect(maxAbsDiff(sims, ref.similarities)).toBeLessThan(1e-4);
    expect(maxAbsDiff(out.logits.data as Float32Array, ref.logits)).toBeLessThan(1e-4);
    head.dispose();
  });

  it('puts Reduce axes in attributes before opset 18 and in inputs from 18', () => {
    const w = headExportWeights(randomHead(TINY_HEAD, 1));
    const reduceMin = (opset: number) =>
      decodeModel(buildHeadModel(w, { height: H, width: W, opset })).graph.nodes.find(
        (n) => n.outputs[0] === 'head/min_distances',
      )!;
    expect(reduceMin(13).inputs).toHaveLength(1);
    expect(reduceMin(13).attributes).toHaveLength(2); // axes, keepdims
    expect(reduceMin(18).inputs).toHaveLength(2);
    expect(reduceMin(18).attributes).toHaveLength(1); // keepdims
  });

  it('gives exact similarities when a prototype nearly coincides with a patch (no cancellation in the minimum)', async () => {
    // No add-on: z = features, scaled so ||z||^2 ~ 600 while d ~ 1e-5. The expansion
    // ||z||^2 - 2z.p + ||p||^2 alone is off by ~1e-4 in d there, i.e. ~1 in similarity.
    const head = randomHead({ ...TINY_HEAD, addOn: [] }, 11);
    const m = head.numPrototypes;
    const features = randomValues(B * H * W * D, 12, 10);
    const noise = randomValues(m * D, 13, 1e-3);
    const protos = new Float32Array(m * D);
    for (let j = 0; j < m; j++)
      for (let k = 0; k < D; k++)
        protos[j * D + k] = features[((j % B) * H * W + (j % (H * W))) * D + k] + noise[j * D + k];
    head.prototypes.assign(tf.tensor2d(protos, [m, D]));
    const C = TINY_HEAD.numClasses;
    const ll = head.lastLayer.dataSync();
    const refSim = new Float64Array(B * m);
    const refLogits = new Float64Array(B * C);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < m; j++) {
        let best = Infinity;
        for (let p = 0; p < H * W; p++) {
          let d = 0;
          for (let k = 0; k < D; k++) d += (features[(b * H * W + p) * D + k] - protos[j * D + k]) ** 2;
          best = Math.min(best, d);
        }
        refSim[b * m + j] = Math.log((best + 1) / (best + 1e-4));
        for (let c = 0; c < C; c++) refLogits[b * C + c] += refSim[b * m + j] * ll[j * C + c];
      }
    expect(Math.max(...refSim)).toBeGreaterThan(8); // some prototypes sit on their patch
    const trainer = headReference(head, features, [B, H, W, D]);
    const out = await runOrt(buildHeadModel(headExportWeights(head), { height: H, width: W }), {
      features: new ort.Tensor('float32', toNchw(features, B, H, W, D), [B, D, H, W]),
    });
    for (const [name, sims, logits] of [
      ['trainer', trainer.similarities, trainer.logits],
      ['onnx', out.similarities.data, out.logits.data],
    ] as const) {
      expect(maxAbsDiff(sims as Float32Array, Float32Array.from(refSim)), name).toBeLessThan(2e-3);
      expect(maxAbsDiff(logits as Float32Array, Float32Array.from(refLogits)), name).toBeLessThan(5e-3);
    }
    head.dispose();
  });

  it('exports the embedding of tied patches as the prototypes', async () => {
    const head = randomHead(TINY_HEAD, 5);
    // Tie prototypes to patches far from the random init, so a stale variable would show.
    const m = head.numPrototypes;
    head.tieToPatches(randomValues(m * D, 99, 2));
    const features = randomValues(B * H * W * D, 4);
    const ref = headReference(head, features, [B, H, W, D]);
    const w = headExportWeights(head); // syncs the tied prototypes into the variable
    const out = await runOrt(buildHeadModel(w, { height: H, width: W }), {
      features: new ort.Tensor('float32', toNchw(features, B, H, W, D), [B, D, H, W]),
    });
    expect(maxAbsDiff(out.similarities.data as Float32Array, ref.similarities)).toBeLessThan(1e-4);
    expect(maxAbsDiff(out.logits.data as Float32Array, ref.logits)).toBeLessThan(1e-4);
    head.dispose();
  });
});

describe('checkModel', () => {
  it('reports reads before writes, double definitions, missing outputs and domains', () => {
    const graph = makeGraph({
      nodes: [
        makeNode('Relu', ['b'], ['a']), // b is produced only later
        makeNode('Relu', ['x'], ['b']),
        makeNode('Relu', ['x'], ['b']),
        makeNode('QLinearGlobalAveragePool', ['b'], ['c'], { domain: 'com.microsoft' }),
      ],
      inputs: [makeValueInfo('x', OnnxDataType.FLOAT, [1])],
      outputs: [makeValueInfo('y', OnnxDataType.FLOAT, [1])],
    });
    const { opset, problems } = checkModel(encodeModel(makeModel(graph, { '': 13 })));
    expect(opset).toBe(13);
    expect(problems).toEqual([
      'node 0 (Relu) reads "b" before anything produces it',
      'tensor "b" is defined twice (again by node 2 (Relu))',
      'node 3 (QLinearGlobalAveragePool) uses domain "com.microsoft" that the model does not import',
      'graph output "y" is never produced',
    ]);
  });
});

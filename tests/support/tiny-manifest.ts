// A small valid bundle manifest shared by the manifest and edits tests.
import type { Manifest } from '@protoatlas/shared';

/** A small valid manifest: 2 classes, 2 prototypes. */
export function tinyManifest(): Manifest {
  const box = { x: 1, y: 2, w: 3, h: 4 };
  const proto = (id: number, classId: number) => ({
    id,
    classId,
    weights: classId === 0 ? [1, -0.5] : [-0.5, 1],
    pruned: false,
    prunedReason: null,
    source: {
      imageId: `img${id}`,
      width: 64,
      height: 48,
      patch: { row: 1, col: 2 },
      pushDistance: 0.1,
      box,
      patchBox: box,
      receptiveField: null,
    },
    files: {
      crop: `prototypes/${id}/crop.webp`,
      source: `prototypes/${id}/source.webp`,
      heatmap: `prototypes/${id}/heatmap.webp`,
    },
    nearest: {
      train: [
        {
          imageId: 'a',
          classId,
          width: 64,
          height: 48,
          patch: { row: 0, col: 0 },
          distance: 0.2,
          box,
          file: `prototypes/${id}/nearest-1.webp`,
        },
      ],
      val: [],
    },
    purity: 1,
  });
  return {
    schema: 'protoatlas-bundle',
    schemaVersion: 1,
    model: {
      id: 'demo-0123abcd',
      version: '2026.11.26+0123abcd',
      createdAt: '2026-11-26T10:00:00.000Z',
      preset: 'demo',
      description: 'test',
    },
    classes: [
      { id: 0, key: '001.Red_Bird', name: 'Red Bird' },
      { id: 1, key: '002.Blue_Bird', name: 'Blue Bird' },
    ],
    preprocessing: { size: 56, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resize: 'stretch', layout: 'NHWC' },
    featureGrid: { height: 7, width: 7, channels: 64 },
    prototypeDim: 32,
    similarityEpsilon: 1e-4,
    receptiveField: null,
    prototypes: [proto(0, 0), proto(1, 1)],
    files: { trainerModel: { json: 'model/model.json', weights: 'model/weights.bin' }, backbone: [], onnx: null },
    metrics: {
      val: { top1: 0.9, top5: 1, n: 10 },
      test: null,
      baseline: null,
      explanation: { purity: 1, consistency: null, stability: null, partCoverage: 0.5 },
      pruning: null,
      wrongClassNearZero: 0,
    },
    curves: [{ stage: 'warmup', epoch: 1, loss: 1.5, trainAccuracy: 0.5, valTop1: 0.6, valTop5: 1 }],
    backbone: { kind: 'small-cnn', description: 'cnn', source: 'scratch', sha256: null, licence: 'none' },
    dataset: { layout: 'synthetic', name: 'synthetic', licence: 'none', train: 10, val: 10, test: 0 },
  };
}

import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  softenedProbabilities,
  teacherFromTensor,
  teacherRows,
  teacherTargets,
  teacherToTensor,
} from '../../trainer/src/stages/teacher.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('distillation targets', () => {
  it('soften each row of logits at the temperature', () => {
    const p = softenedProbabilities(Float32Array.from([2, 0, 1000, 1000]), 2, 2);
    expect(p[0]).toBeCloseTo(0.731059, 5);
    expect(p[1]).toBeCloseTo(0.268941, 5);
    // Large logits do not overflow.
    expect(Array.from(p.subarray(2))).toEqual([0.5, 0.5]);
  });

  it("are the probe's softened predictions, originals then mirrored copies, looked up by (item, flipped)", () => {
    // Probe: 2 features -> 2 classes, w = identity, b = [0, 1].
    const probe = { w: Float32Array.from([1, 0, 0, 1]), b: Float32Array.from([0, 1]), dim: 2, numClasses: 2 };
    // Two items, their mirrored copies, and one augmented copy each (ignored).
    const x = Float32Array.from([4, 0, 0, 4, 2, 0, 0, 2, 9, 9, 9, 9]);
    const t = teacherTargets(probe, { x, n: 6, dim: 2 }, 2, true, 1);
    expect(t.probs.length).toBe(8);
    // Item 0: logits [4, 1]; item 1 mirrored: logits [0, 3].
    const rows = teacherRows(t, [0, 1], [false, true]);
    expect(rows[0]).toBeCloseTo(Math.exp(4) / (Math.exp(4) + Math.exp(1)), 6);
    expect(rows[3]).toBeCloseTo(Math.exp(3) / (1 + Math.exp(3)), 6);
    // Without mirrored rows a flipped view takes its original's targets.
    const plain = teacherTargets(probe, { x, n: 6, dim: 2 }, 2, false, 1);
    expect(Array.from(teacherRows(plain, [1], [true]))).toEqual(Array.from(teacherRows(plain, [1], [false])));
  });

  it('round-trip through a checkpoint tensor, which must fit the training items', () => {
    const probe = { w: Float32Array.from([1, 0, 0, 1]), b: Float32Array.from([0, 0]), dim: 2, numClasses: 2 };
    const t = teacherTargets(probe, { x: Float32Array.from([1, 0, 0, 1]), n: 2, dim: 2 }, 1, true, 3);
    const back = teacherFromTensor(teacherToTensor(t), 1);
    expect(back).toEqual(t);
    expect(() => teacherFromTensor(teacherToTensor(t), 5)).toThrow(/2 rows for 5 training items/);
  });
});

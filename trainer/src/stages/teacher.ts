/**
 * Distillation targets: the same-backbone baseline's softened class probabilities on every training
 * view (each image and its mirrored copy), computed once from its pooled features and looked up per
 * batch by (item, flipped).
 */
import type { HostTensor } from '../core/host-tensors.ts';
import { linearLogits, type LinearModel } from './linear-probe.ts';

export interface TeacherTargets {
  /** Training items. */
  n: number;
  numClasses: number;
  /** Whether rows n..2n-1 hold the mirrored copies. */
  mirrored: boolean;
  /** [(mirrored ? 2n : n), C] softmax(logits / T). */
  probs: Float32Array;
}

/** Tensor name under which a run's checkpoints carry the targets (a resumed run reads them back). */
export const TEACHER_TENSOR = 'teacher.probs';

/** softmax(logits / T) of each row of a [rows, C] array. */
export function softenedProbabilities(logits: Float32Array, numClasses: number, temperature: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < logits.length / numClasses; r++) {
    const o = r * numClasses;
    let max = -Infinity;
    for (let c = 0; c < numClasses; c++) max = Math.max(max, logits[o + c] / temperature);
    let sum = 0;
    for (let c = 0; c < numClasses; c++) sum += out[o + c] = Math.exp(logits[o + c] / temperature - max);
    for (let c = 0; c < numClasses; c++) out[o + c] /= sum;
  }
  return out;
}

/**
 * The probe's targets from the pooled training views in pooledFeatures' order (originals, then
 * mirrored copies when `mirrored`; any augmented copies after them are not used).
 */
export function teacherTargets(
  probe: LinearModel,
  pooled: { x: Float32Array; n: number; dim: number },
  items: number,
  mirrored: boolean,
  temperature: number,
): TeacherTargets {
  const rows = items * (mirrored ? 2 : 1);
  if (pooled.n < rows) throw new Error(`teacher: ${pooled.n} pooled views for ${rows} training views`);
  const logits = linearLogits(probe, pooled.x.subarray(0, rows * pooled.dim), rows);
  return {
    n: items,
    numClasses: probe.numClasses,
    mirrored,
    probs: softenedProbabilities(logits, probe.numClasses, temperature),
  };
}

/** The targets' rows for a batch [B, C]; a mirrored view without its own row takes the original's. */
export function teacherRows(t: TeacherTargets, indices: number[], flipped: boolean[]): Float32Array {
  const C = t.numClasses;
  const out = new Float32Array(indices.length * C);
  indices.forEach((i, k) => {
    const row = flipped[k] && t.mirrored ? t.n + i : i;
    out.set(t.probs.subarray(row * C, (row + 1) * C), k * C);
  });
  return out;
}

export function teacherToTensor(t: TeacherTargets): HostTensor {
  return { shape: [t.probs.length / t.numClasses, t.numClasses], data: t.probs };
}

export function teacherFromTensor(tensor: HostTensor, items: number): TeacherTargets {
  const [rows, numClasses] = tensor.shape;
  if (rows !== items && rows !== 2 * items)
    throw new Error(`the checkpoint's teacher targets have ${rows} rows for ${items} training items`);
  return { n: items, numClasses, mirrored: rows === 2 * items, probs: tensor.data };
}

/**
 * Distillation on the cub200 recipe's path (frozen ONNX backbone, tiny scale): the baseline's softened
 * predictions on every training view travel in the checkpoints, so a run stopped and resumed inside
 * warm-up ends with the same weights as one that ran through.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTensorFile } from '../../trainer/src/core/tensor-file.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { TEACHER_TENSOR } from '../../trainer/src/stages/teacher.ts';
import { tinyQLinearBackbone, tinyOnnxRunConfig } from './tiny-onnx-backbone.ts';
import { tinySyntheticData } from './tiny-run.ts';

process.env.PROTOATLAS_QUIET = '1';

describe('distillation from the baseline (loss.distillation)', () => {
  it('keeps its targets in the checkpoints and resumes bit-identical', async () => {
    const dir = await tinySyntheticData(3, 12, 4);
    const backbone = join(dir, 'tiny-qlinear.onnx');
    await writeFile(backbone, tinyQLinearBackbone(5));
    const config = (distillation: number) =>
      tinyOnnxRunConfig(backbone, {
        head: { prototypesPerClass: 2 },
        loss: { distillation, distillationTemperature: 3 },
        warmup: { epochs: 2, batchSize: 8, microBatch: 4 },
        pushTune: { epochs: 1, batchSize: 8 },
        lastLayer: { epochs: 1, batchSize: 16 },
        featureCacheDir: join(dir, 'cache'),
        featureCacheEncoding: 'float16',
      });
    const run = (name: string, distillation: number, more: { resume?: boolean; stopAfterEpochs?: number } = {}) =>
      trainRun({
        config: config(distillation),
        dataDir: join(dir, 'data'),
        outDir: join(dir, name),
        resume: more.resume ?? false,
        quiet: true,
        skipBundle: true,
        stopAfterEpochs: more.stopAfterEpochs,
      });

    expect((await run('full', 1)).finished).toBe(true);
    expect((await run('split', 1, { stopAfterEpochs: 1 })).finished).toBe(false);
    const ck = await loadTensorFile(join(dir, 'split', 'checkpoints', 'last.ckpt'));
    const teacher = ck.tensors.get(TEACHER_TENSOR)!;
    // 27 training images and their mirrored copies, 3 classes; each row a distribution.
    expect(teacher.shape).toEqual([54, 3]);
    for (let r = 0; r < 54; r++) {
      const row = teacher.data.subarray(r * 3, r * 3 + 3);
      expect(row[0] + row[1] + row[2]).toBeCloseTo(1, 5);
    }
    expect((await run('split', 1, { resume: true })).finished).toBe(true);

    const a = await loadTensorFile(join(dir, 'full', 'model', 'weights.bin'));
    const b = await loadTensorFile(join(dir, 'split', 'model', 'weights.bin'));
    for (const [name, t] of a.tensors) expect(Array.from(b.tensors.get(name)!.data), name).toEqual(Array.from(t.data));

    // The term is not ignored: without it the add-on ends elsewhere.
    await run('plain', 0);
    const c = await loadTensorFile(join(dir, 'plain', 'model', 'weights.bin'));
    const w = 'head.addon0.w';
    const diff = a.tensors.get(w)!.data.reduce((m, v, i) => Math.max(m, Math.abs(v - c.tensors.get(w)!.data[i])), 0);
    expect(diff).toBeGreaterThan(1e-4);
  }, 300_000);
});

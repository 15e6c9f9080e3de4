import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTensorFile } from '../../trainer/src/core/tensor-file.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { tinyConfig, tinySyntheticData } from './tiny-run.ts';

process.env.PROTOATLAS_QUIET = '1';

describe('resume', () => {
  it('a run stopped mid-way and resumed ends bit-identical to an uninterrupted run (online augmentation on)', async () => {
    const dir = await tinySyntheticData(3, 12, 4);
    const data = join(dir, 'data');
    const config = tinyConfig(join(dir, 'cache'), {
      data: { valPerClass: 3, flip: true, augment: { enabled: true } },
      joint: { epochs: 2, batchSize: 16, inputDropout: 0.1 },
      lastLayer: { epochs: 2, batchSize: 16 },
    });
    expect(config.data.augment).toMatchObject({ enabled: true, rotation: 15, shear: 10 });

    const full = await trainRun({
      config,
      dataDir: data,
      outDir: join(dir, 'full'),
      resume: false,
      quiet: true,
      skipBundle: true,
    });
    expect(full.finished).toBe(true);

    // Stop inside the joint phase (after warm-up 1 + joint 1), then inside the last layer stage.
    const part1 = await trainRun({
      config,
      dataDir: data,
      outDir: join(dir, 'split'),
      resume: false,
      quiet: true,
      skipBundle: true,
      stopAfterEpochs: 2,
    });
    expect(part1.finished).toBe(false);
    await expect(
      trainRun({ config, dataDir: data, outDir: join(dir, 'split'), resume: false, quiet: true, skipBundle: true }),
    ).rejects.toThrow(/--resume/);
    const part2 = await trainRun({
      config,
      dataDir: data,
      outDir: join(dir, 'split'),
      resume: true,
      quiet: true,
      skipBundle: true,
      stopAfterEpochs: 2,
    });
    expect(part2.finished).toBe(false);
    const done = await trainRun({
      config,
      dataDir: data,
      outDir: join(dir, 'split'),
      resume: true,
      quiet: true,
      skipBundle: true,
    });
    expect(done.finished).toBe(true);

    const a = await loadTensorFile(join(dir, 'full', 'model', 'weights.bin'));
    const b = await loadTensorFile(join(dir, 'split', 'model', 'weights.bin'));
    expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
    expect(a.tensors.size).toBeGreaterThan(6); // head + backbone weights
    for (const [name, t] of a.tensors) expect(Array.from(b.tensors.get(name)!.data), name).toEqual(Array.from(t.data));

    const metricsA = (await readFile(join(dir, 'full', 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const metricsB = (await readFile(join(dir, 'split', 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(metricsB.length).toBe(1 + 2 + 3 + 2); // warm-up, joint, push-tune, last layer
    expect(metricsB.map((m) => m.loss)).toEqual(metricsA.map((m) => m.loss));
  });

  it('a run killed inside epochs resumes from its mid-epoch checkpoints, bit-identical (gradient threads on)', async () => {
    const dir = await tinySyntheticData(3, 12, 4);
    const data = join(dir, 'data');
    const config = tinyConfig(join(dir, 'cache'), {
      data: { valPerClass: 3, flip: true, augment: { enabled: true } },
      warmup: { epochs: 1, batchSize: 8 },
      joint: { epochs: 2, batchSize: 8, microBatch: 4, inputDropout: 0.1 },
      pushTune: { epochs: 1, batchSize: 8, microBatch: 4 },
      lastLayer: { epochs: 1, batchSize: 16 },
      checkpointMinutes: 0,
      trainThreads: 2,
    });
    const full = await trainRun({
      config,
      dataDir: data,
      outDir: join(dir, 'full'),
      resume: false,
      quiet: true,
      skipBundle: true,
    });
    expect(full.finished).toBe(true);

    // 27 training images in batches of 8: 4 batches per epoch, a stop possible after the first 3.
    // Stops after 2, 5 and 4 such batches: inside warm-up, joint epoch 2 and push-tune.
    const out = join(dir, 'split');
    const stops: { stage: string; epoch: number; nextItem?: number }[] = [];
    for (const stopAfterBatches of [2, 5, 4]) {
      const part = await trainRun({
        config,
        dataDir: data,
        outDir: out,
        resume: true,
        quiet: true,
        skipBundle: true,
        stopAfterBatches,
      });
      const ck = await loadTensorFile<{ stage: string; epoch: number; epochProgress?: { nextItem: number } }>(
        join(out, 'checkpoints', 'last.ckpt'),
      );
      stops.push({ stage: ck.meta.stage, epoch: ck.meta.epoch, nextItem: ck.meta.epochProgress?.nextItem });
      expect(part.finished, JSON.stringify(stops)).toBe(false);
    }
    expect(stops).toEqual([
      { stage: 'warmup', epoch: 0, nextItem: 16 },
      { stage: 'joint', epoch: 1, nextItem: 8 },
      { stage: 'pushTune', epoch: 0, nextItem: 16 },
    ]);
    const done = await trainRun({ config, dataDir: data, outDir: out, resume: true, quiet: true, skipBundle: true });
    expect(done.finished).toBe(true);

    const a = await loadTensorFile(join(dir, 'full', 'model', 'weights.bin'));
    const b = await loadTensorFile(join(out, 'model', 'weights.bin'));
    for (const [name, t] of a.tensors) expect(Array.from(b.tensors.get(name)!.data), name).toEqual(Array.from(t.data));
    const metrics = async (d: string) =>
      (await readFile(join(d, 'metrics.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
    const [ma, mb] = [await metrics(join(dir, 'full')), await metrics(out)];
    expect(mb.map((m) => [m.stage, m.epoch, m.loss, m.trainAccuracy])).toEqual(
      ma.map((m) => [m.stage, m.epoch, m.loss, m.trainAccuracy]),
    );
  });
});

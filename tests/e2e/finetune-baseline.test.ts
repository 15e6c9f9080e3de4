/**
 * The fine-tuned black-box baseline on a tiny int8 ONNX graph: GAP + linear trained with the backbone
 * through the preset's warm-up and joint phases. Its warm-up leaves the backbone as published, the joint
 * phase moves it, two gradient threads give the updates one thread gives, and a run stopped inside an
 * epoch and resumed ends with the same weights and metrics as a run that never stopped.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { importOnnxBackbone } from '../../trainer/src/backbone/onnx-import.ts';
import { resolveConfig } from '../../trainer/src/config/presets.ts';
import type { HostTensors } from '../../trainer/src/core/host-tensors.ts';
import { loadTensorFile, saveTensorFile } from '../../trainer/src/core/tensor-file.ts';
import {
  baselinePaths,
  fineTuneBaseline,
  type FineTuneBaselineResult,
} from '../../trainer/src/run/finetune-baseline.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { maxAbsDiff } from '../export/helpers.ts';
import { TINY_ONNX, tinyOnnxBackboneConfig, tinyQLinearBackbone } from './tiny-onnx-backbone.ts';
import { tinySyntheticData } from './tiny-run.ts';

process.env.PROTOATLAS_QUIET = '1';

describe('fine-tuned baseline (GAP + linear, backbone trained in the joint phase)', () => {
  let dir: string;
  let backbone: string;

  const config = (threads: number, jointEpochs = 2) =>
    resolveConfig('cub200-finetune', {
      backend: 'wasm',
      trainThreads: threads,
      data: { valPerClass: 3 },
      backbone: { ...tinyOnnxBackboneConfig(backbone), trainable: true },
      warmup: { epochs: 1, batchSize: 16, microBatch: 8, lr: { addOn: 0.05 } },
      joint: { epochs: jointEpochs, batchSize: 16, microBatch: 8, lr: { features: 1e-2, addOn: 0.05 } },
      featureCacheDir: join(dir, 'cache'),
    });

  const run = async (name: string, threads: number, opts: { resume?: boolean; stopAfterBatches?: number } = {}) =>
    fineTuneBaseline({
      config: config(threads),
      dataDir: join(dir, 'data'),
      outDir: join(dir, name),
      resume: opts.resume ?? false,
      backendName: 'wasm',
      quiet: true,
      stopAfterBatches: opts.stopAfterBatches,
    });

  const weights = async (name: string): Promise<HostTensors> =>
    (await loadTensorFile(baselinePaths(join(dir, name)).checkpoint)).tensors;
  /** Every model weight of two runs' checkpoints equal (the optimiser state aside). */
  const expectSameWeights = async (first: string, second: string) => {
    const a = await weights(first);
    const b = await weights(second);
    for (const [k, v] of a) if (!k.startsWith('adam.')) expect(maxAbsDiff(v.data, b.get(k)!.data), k).toBe(0);
  };
  const rows = async (name: string) =>
    (await readFile(baselinePaths(join(dir, name)).metrics, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => {
        const { seconds: _, ...row } = JSON.parse(l);
        return row;
      });

  let two: FineTuneBaselineResult;

  beforeAll(async () => {
    await initBackend('wasm', { quiet: true });
    dir = await tinySyntheticData(4, 24, 8);
    backbone = join(dir, 'tiny-qlinear.onnx');
    await writeFile(backbone, tinyQLinearBackbone(5, 'image'));
    const r = await run('two-threads', 2);
    if (r === 'stopped') throw new Error('the run stopped without being asked to');
    two = r;
  }, 300_000);

  it('trains one warm-up and two joint epochs, scoring validation after each', async () => {
    expect(two.history.map((h) => `${h.stage} ${h.epoch}`)).toEqual(['warmup 1', 'joint 1', 'joint 2']);
    for (const h of two.history) {
      expect(h.valTop1).not.toBeNull();
      expect(Number.isFinite(h.loss) && h.loss > 0).toBe(true);
    }
    expect(two.val?.n).toBe(12); // 4 classes x 3 held out
    expect(two.val?.top1).toBe(two.history.at(-1)!.valTop1);
    // Each validation image's prediction, for paired comparisons; they give the accuracy reported.
    const { ids, labels, predicted } = two.valPredictions!;
    expect(new Set(ids).size).toBe(12);
    expect(labels).toHaveLength(12);
    expect(predicted.filter((p, i) => p === labels[i]).length / 12).toBe(two.val!.top1);
    // Training lowers the loss from the warm-up's (near ln 4 for a fresh head on 4 classes).
    expect(two.history[2].loss).toBeLessThan(two.history[0].loss - 0.03);
    expect(await rows('two-threads')).toHaveLength(3);
  });

  it('moves the backbone away from its published weights, and the linear head off its start', async () => {
    const w = await weights('two-threads');
    const published = await importOnnxBackbone({
      path: backbone,
      tap: 'auto',
      preprocess: { size: TINY_ONNX.side, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    });
    const last = [...published.convsByNode.values()].at(-1)!.kernel.dataSync() as Float32Array;
    await published.dispose();
    const tuned = [...w.entries()].filter(([k]) => k.startsWith('backbone.') && k.endsWith('.kernel'));
    expect(tuned.length).toBeGreaterThan(0);
    const tunedLast = tuned.at(-1)![1].data;
    expect(tunedLast.length).toBe(last.length);
    expect(maxAbsDiff(tunedLast, last)).toBeGreaterThan(1e-3);
    expect(w.get('head.linear.w')!.shape).toEqual([TINY_ONNX.channels[2], 4]);
    expect(Math.max(...w.get('head.linear.b')!.data.map(Math.abs))).toBeGreaterThan(1e-4);
  });

  it('gives the same weights and metrics on one thread as on two', async () => {
    await run('one-thread', 1);
    await expectSameWeights('two-threads', 'one-thread');
    expect(await rows('one-thread')).toEqual(await rows('two-threads'));
  }, 300_000);

  it('resumes a run stopped inside an epoch to the same end as a run never stopped', async () => {
    // Seven batches end past the warm-up (84 training images in batches of 16), inside the first joint epoch.
    expect(await run('resumed', 2, { stopAfterBatches: 7 })).toBe('stopped');
    const stopped = await rows('resumed');
    expect(stopped.map((r) => r.stage)).toEqual(['warmup']);
    const r = await run('resumed', 2, { resume: true });
    expect(r).not.toBe('stopped');
    await expectSameWeights('two-threads', 'resumed');
    expect(await rows('resumed')).toEqual(await rows('two-threads'));
  }, 300_000);

  it('keeps no progress of a finished epoch in its checkpoint, so a resume at an epoch boundary starts the next one', async () => {
    // A save after every batch: the last epoch's in-epoch progress must not outlive the epoch.
    const r = await fineTuneBaseline({
      config: { ...config(2), checkpointMinutes: 0 },
      dataDir: join(dir, 'data'),
      outDir: join(dir, 'every-batch'),
      resume: false,
      backendName: 'wasm',
      quiet: true,
    });
    expect(r).not.toBe('stopped');
    const meta = (await loadTensorFile<{ epochProgress?: unknown }>(baselinePaths(join(dir, 'every-batch')).checkpoint))
      .meta;
    expect(meta.epochProgress).toBeUndefined();
    // Saving more often changes nothing trained.
    await expectSameWeights('two-threads', 'every-batch');
  }, 300_000);

  it("refuses an existing run without --resume, another version's checkpoint, and a frozen backbone, naming the fix", async () => {
    await expect(run('two-threads', 2)).rejects.toThrow(/already holds a baseline run .*pass --resume/);
    const ckpt = await loadTensorFile<Record<string, unknown>>(baselinePaths(join(dir, 'two-threads')).checkpoint);
    await mkdir(join(dir, 'old-version'));
    await writeFile(join(dir, 'old-version', 'config.json'), JSON.stringify(config(2)));
    await saveTensorFile(
      baselinePaths(join(dir, 'old-version')).checkpoint,
      { ...ckpt.meta, version: 1 },
      ckpt.tensors,
    );
    await expect(run('old-version', 2, { resume: true })).rejects.toThrow(
      /baseline\.ckpt was written by another version .*version 1, this one reads 2.*new --out/,
    );
    const frozen = resolveConfig('cub200', { backbone: tinyOnnxBackboneConfig(backbone) });
    await expect(
      fineTuneBaseline({
        config: frozen,
        dataDir: join(dir, 'data'),
        outDir: join(dir, 'frozen'),
        resume: false,
        backendName: 'wasm',
        quiet: true,
      }),
    ).rejects.toThrow(/keeps its backbone frozen .*without fine-tuning/);
  });
});

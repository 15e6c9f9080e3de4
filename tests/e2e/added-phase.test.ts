import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { loadTensorFile } from '../../trainer/src/core/tensor-file.ts';
import { Adam } from '../../trainer/src/optim/adam.ts';
import type { TrainConfig } from '../../trainer/src/config/config.ts';
import { runEpochs } from '../../trainer/src/run/epoch-runner.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import type { TrainingPhase } from '../../trainer/src/run/training-phase.ts';
import { trainingSchedule } from '../../trainer/src/run/training-schedule.ts';
import { tinyConfig, tinySyntheticData } from './tiny-run.ts';

process.env.PROTOATLAS_QUIET = '1';

/**
 * A phase added to the schedule (the example of docs/training-schedule.md): each epoch draws a random
 * gradient for the last layer and takes an Adam step with it. It has all a resume must carry: the random
 * stream, an optimiser's state, and a tensor of its own (the sum of its draws).
 */
const jitterPhase: TrainingPhase = {
  name: 'jitter',
  summaryLabel: 'after jitter',
  async run(ctx) {
    const w = ctx.head.lastLayer;
    const optimizer = new Adam([{ name: 'lastLayer', lr: 1e-3, vars: [['head.last_layer', w]] }]);
    const sum = ctx.resumedTensor('jitter.sum') ?? { shape: w.shape.slice(), data: new Float32Array(w.size) };
    ctx.phaseTensors.set('jitter.sum', sum);
    const ended = await runEpochs(ctx, {
      epochs: 3,
      optimizer,
      async runEpoch() {
        const g = Float32Array.from({ length: w.size }, () => ctx.rng.next() - 0.5);
        g.forEach((x, i) => (sum.data[i] += x));
        const grad = tf.tensor(g, w.shape);
        optimizer.apply({ [w.name]: grad });
        grad.dispose();
        return { row: { firstDraw: g[0] } };
      },
    });
    if (ended === 'stopped') return 'stopped';
    optimizer.dispose();
    return { seconds: 0 };
  },
};

/** The default schedule with the jitter phase between last layer and prune. */
const withJitter = (config: TrainConfig) => {
  const phases = trainingSchedule(config);
  phases.splice(phases.findIndex((p) => p.name === 'lastLayer') + 1, 0, jitterPhase);
  return phases;
};

const metrics = async (dir: string) =>
  (await readFile(join(dir, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

describe('a phase added to the training schedule', () => {
  it('runs in its place, checkpoints, and resumes from inside it bit-identical', async () => {
    const dir = await tinySyntheticData(3, 10, 2);
    const data = join(dir, 'data');
    const config = tinyConfig(join(dir, 'cache'), {
      joint: { epochs: 1, batchSize: 16 },
      pushTune: { epochs: 1, batchSize: 16 },
      lastLayer: { epochs: 1, batchSize: 16 },
      // Pruning this tiny model can zero the whole last layer, and with it what the jitter phase did.
      prune: { mode: 'off' },
    });
    const run = { config, dataDir: data, quiet: true, skipBundle: true, schedule: withJitter };
    const full = await trainRun({ ...run, outDir: join(dir, 'full'), resume: false });
    expect(full.finished).toBe(true);
    expect(Object.keys(full.stages)).toEqual([
      'init',
      'warmup',
      'joint',
      'push',
      'pushTune',
      'lastLayer',
      'jitter',
      'prune',
    ]);
    const rows = await metrics(join(dir, 'full'));
    expect(rows.map((m) => m.stage)).toEqual([
      'warmup',
      'joint',
      'pushTune',
      'lastLayer',
      'jitter',
      'jitter',
      'jitter',
    ]);
    await access(join(dir, 'full', 'checkpoints', 'jitter.ckpt'));

    // 4 epochs before it: stop after its first epoch.
    const out = join(dir, 'split');
    const part = await trainRun({ ...run, outDir: out, resume: false, stopAfterEpochs: 5 });
    expect(part.finished).toBe(false);
    const ck = await loadTensorFile<{ stage: string; epoch: number }>(join(out, 'checkpoints', 'last.ckpt'));
    expect([ck.meta.stage, ck.meta.epoch]).toEqual(['jitter', 1]);
    expect(ck.tensors.has('jitter.sum')).toBe(true);
    expect([...ck.tensors.keys()].filter((k) => k.startsWith('adam.'))).not.toEqual([]);
    await expect(access(join(out, 'checkpoints', 'jitter.ckpt'))).rejects.toThrow();

    // Without the phase in its schedule, the run cannot continue: the error names the file and the way out.
    await expect(trainRun({ ...run, schedule: undefined, outDir: out, resume: true })).rejects.toThrow(
      new RegExp(
        'split/checkpoints/last\\.ckpt: the run stopped before phase "jitter", which this version\'s training ' +
          'schedule \\(warmup, joint, push, pushTune, lastLayer, prune\\) does not have; finish it with the version',
      ),
    );

    const done = await trainRun({ ...run, outDir: out, resume: true });
    expect(done.finished).toBe(true);
    const [a, b] = [await metrics(join(dir, 'full')), await metrics(out)];
    expect(b.map((m) => [m.stage, m.epoch, m.firstDraw ?? m.loss])).toEqual(
      a.map((m) => [m.stage, m.epoch, m.firstDraw ?? m.loss]),
    );
    const wa = await loadTensorFile(join(dir, 'full', 'model', 'weights.bin'));
    const wb = await loadTensorFile(join(out, 'model', 'weights.bin'));
    for (const [name, t] of wa.tensors)
      expect(Array.from(wb.tensors.get(name)!.data), name).toEqual(Array.from(t.data));
    const jitterSum = async (run: string) =>
      Array.from((await loadTensorFile(join(run, 'checkpoints', 'jitter.ckpt'))).tensors.get('jitter.sum')!.data);
    const sums = [await jitterSum(join(dir, 'full')), await jitterSum(out)];
    expect(sums[1]).toEqual(sums[0]);
    expect(sums[0].some((x) => x !== 0)).toBe(true);
  });

  it('is the example docs/training-schedule.md shows, word for word', async () => {
    const phaseCode = (text: string) => /const jitterPhase[\s\S]*?\n};\n/.exec(text)?.[0];
    const here = await readFile(fileURLToPath(import.meta.url), 'utf8');
    const doc = await readFile(fileURLToPath(new URL('../../docs/training-schedule.md', import.meta.url)), 'utf8');
    expect(phaseCode(here)).toBeDefined();
    expect(phaseCode(doc)).toBe(phaseCode(here));
  });
});

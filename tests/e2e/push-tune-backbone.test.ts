import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModelRunner } from '../../trainer/src/analysis/load-model-runner.ts';
import { pickTensors } from '../../trainer/src/core/host-tensors.ts';
import { loadCheckpoint } from '../../trainer/src/run/checkpoint.ts';
import { readModelJson } from '../../trainer/src/model/model-file.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { tinyConfig, tinySyntheticData } from './tiny-run.ts';

process.env.PROTOATLAS_QUIET = '1';

const backboneOf = async (run: string, phase: string) =>
  pickTensors((await loadCheckpoint(join(run, 'checkpoints', `${phase}.ckpt`))).tensors, 'backbone.');

describe('push-tune with a trainable backbone (pushTune.lr.features > 0)', () => {
  it('trains the backbone after push, and every prototype still lies on its source patch as the final backbone sees it', async () => {
    const dir = await tinySyntheticData(3, 12, 2);
    const data = join(dir, 'data');
    const config = tinyConfig(join(dir, 'cache'), {
      joint: { epochs: 1, batchSize: 16 },
      pushTune: { epochs: 2, batchSize: 16, lr: { features: 1e-2, addOn: 1e-3, prototypes: 0, lastLayer: 0 } },
      lastLayer: { epochs: 1, batchSize: 16 },
    });
    const run = join(dir, 'run');
    const base = { config, dataDir: data, quiet: true, skipBundle: true };
    expect((await trainRun({ ...base, outDir: run, resume: false })).finished).toBe(true);

    const [pushed, tuned] = [await backboneOf(run, 'push'), await backboneOf(run, 'pushTune')];
    expect(pushed.size).toBeGreaterThan(0);
    const moved = [...pushed].filter(([k, t]) => t.data.some((x, i) => x !== tuned.get(k)!.data[i]));
    expect(moved.length).toBeGreaterThan(0);

    // Tied to the patch it was pushed onto: squared distance 0 there, under the backbone the model ships.
    await initBackend('wasm', { quiet: true });
    const { runner } = await loadModelRunner(run);
    const { json } = await readModelJson(run);
    const [, W] = runner.featureShape;
    const m = runner.head.numPrototypes;
    const sources = json.prototypes!.filter((p) => p.imagePath);
    expect(sources).toHaveLength(m);
    for (const p of sources) {
      const [d] = await runner.imageDistances([(await runner.loadImage(p.imagePath!)).input]);
      const there = d.data[(p.row * W + p.col) * m + p.prototype];
      const nearest = Math.min(...Array.from({ length: d.height * d.width }, (_, q) => d.data[q * m + p.prototype]));
      expect(there, `prototype ${p.prototype}`).toBeLessThan(1e-4);
      expect(there).toBe(nearest);
    }
    await runner.dispose();

    // Stopped after the first push-tune epoch and resumed: the same weights as the run that did not stop.
    const split = join(dir, 'split');
    expect((await trainRun({ ...base, outDir: split, resume: false, stopAfterEpochs: 3 })).finished).toBe(false);
    expect((await trainRun({ ...base, outDir: split, resume: true })).finished).toBe(true);
    const [a, b] = [
      (await loadCheckpoint(join(run, 'checkpoints', 'last.ckpt'))).tensors,
      (await loadCheckpoint(join(split, 'checkpoints', 'last.ckpt'))).tensors,
    ];
    for (const [name, t] of a)
      if (!name.startsWith('adam.')) expect(Array.from(b.get(name)!.data), name).toEqual(Array.from(t.data));
  }, 300_000);
});

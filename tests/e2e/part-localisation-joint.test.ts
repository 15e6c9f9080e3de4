/**
 * loss.partLocalisationJoint end to end: a tiny CUB-layout dataset with part annotations, a CNN that
 * trains on augmented images, and the part localisation term in the joint stage, its parts taken from the
 * patches the prototypes were initialised at (recorded in the checkpoint).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointMeta } from '../../trainer/src/run/checkpoint.ts';
import { loadTensorFile } from '../../trainer/src/core/tensor-file.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { cleanup, tempDir, writeGradientPng, writeText } from '../data/fixtures.ts';
import { tinyConfig } from './tiny-run.ts';

process.env.PROTOATLAS_QUIET = '1';

const PER_CLASS = 8;

describe('part localisation in the joint stage', () => {
  let root: string;
  let data: string;
  beforeAll(async () => {
    root = await tempDir('part-joint');
    data = join(root, 'data');
    const images: string[] = [];
    const boxes: string[] = [];
    const locs: string[] = [];
    for (let c = 0; c < 2; c++)
      for (let i = 0; i < PER_CLASS; i++) {
        const id = c * PER_CLASS + i + 1;
        const file = `00${c + 1}.${'AB'[c]}/${'AB'[c]}_${i}.png`;
        await writeGradientPng(join(data, 'train_cropped', file), 56, 56, 40 * c + 3 * i);
        images.push(`${id} ${file}`);
        boxes.push(`${id} 0 0 56 56`);
        // Part 1 near the top left, part 2 near the bottom right; part 2 hidden on every fourth image.
        locs.push(`${id} 1 ${10 + i} 12 1`, `${id} 2 44 ${40 + i} ${i % 4 === 3 ? 0 : 1}`);
      }
    await writeText(join(data, 'meta', 'images.txt'), `${images.join('\n')}\n`);
    await writeText(join(data, 'meta', 'bounding_boxes.txt'), `${boxes.join('\n')}\n`);
    await writeText(join(data, 'meta', 'parts', 'parts.txt'), '1 back\n2 tail\n');
    await writeText(join(data, 'meta', 'parts', 'part_locs.txt'), `${locs.join('\n')}\n`);
  });
  afterAll(() => cleanup(root));

  const config = (partLocalisationJoint: boolean) =>
    tinyConfig(join(root, 'cache'), {
      data: { valPerClass: 2, augment: { enabled: true } },
      head: {
        addOn: [
          { channels: 16, activation: 'relu' },
          { channels: 8, activation: 'sigmoid' },
        ],
        prototypesPerClass: 2,
        prototypeInit: 'patches',
      },
      loss: { partLocalisation: 1, partLocalisationRadius: 14, partLocalisationJoint },
      warmup: { epochs: 1, batchSize: 6 },
      joint: { epochs: 2, batchSize: 6 },
      pushTune: { epochs: 1, batchSize: 6 },
      lastLayer: { epochs: 1, batchSize: 12 },
    });

  const rows = async (dir: string) =>
    (await readFile(join(dir, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));

  it('acts in joint epochs on augmented images, from the recorded initial patches', async () => {
    const out = join(root, 'on');
    await trainRun({ dataDir: data, config: config(true), outDir: out, resume: false, quiet: true, skipBundle: true });
    const joint = (await rows(out)).filter((r) => r.stage === 'joint');
    expect(joint).toHaveLength(2);
    for (const r of joint) {
      expect(r.partLocalisation).toBeGreaterThanOrEqual(0);
      expect(r.onPart).toBeGreaterThanOrEqual(0);
      expect(r.onPart).toBeLessThanOrEqual(1);
    }
    // A hinge that is not yet met somewhere, or met everywhere: either way it was computed on real pairs.
    expect(joint.some((r) => r.partLocalisation > 0 || r.onPart === 1)).toBe(true);
    expect((await rows(out)).find((r) => r.stage === 'warmup').partLocalisation).toBeUndefined();
    const { meta } = await loadTensorFile<CheckpointMeta>(join(out, 'checkpoints', 'last.ckpt'));
    const init = meta!.initPatches!;
    expect(init.map((r) => r.prototype)).toEqual([0, 1, 2, 3]);
    // Each prototype started at a patch of an image of its own class (training items: 6 per class, in order).
    for (const r of init) {
      expect(r.item).toBeGreaterThanOrEqual(0);
      expect(r.classIndex).toBe(r.prototype < 2 ? 0 : 1);
    }
    // Stopped inside the joint stage and resumed, the run takes its parts from the checkpoint: bit for bit.
    const split = join(root, 'split');
    const opts = { dataDir: data, config: config(true), outDir: split, quiet: true, skipBundle: true };
    expect((await trainRun({ ...opts, resume: false, stopAfterEpochs: 2 })).finished).toBe(false);
    await trainRun({ ...opts, resume: true });
    const noTime = (r: Record<string, unknown>) => ({ ...r, seconds: undefined });
    expect((await rows(split)).map(noTime)).toEqual((await rows(out)).map(noTime));
    const weights = async (dir: string) => (await loadTensorFile(join(dir, 'model', 'weights.bin'))).tensors;
    const [a, b] = [await weights(out), await weights(split)];
    for (const [name, t] of a) expect(Array.from(b.get(name)!.data), name).toEqual(Array.from(t.data));
  }, 120_000);

  it('stays out of the joint stage without it, and is refused where it cannot act', async () => {
    const out = join(root, 'off');
    await trainRun({ dataDir: data, config: config(false), outDir: out, resume: false, quiet: true, skipBundle: true });
    const all = await rows(out);
    expect(all.filter((r) => r.stage === 'joint').every((r) => r.partLocalisation === undefined)).toBe(true);
    expect(all.find((r) => r.stage === 'pushTune').partLocalisation).toBeGreaterThanOrEqual(0);
    expect(() =>
      tinyConfig(join(root, 'cache'), { loss: { partLocalisation: 0, partLocalisationJoint: true } }),
    ).toThrow(/partLocalisationJoint.*loss\.partLocalisation is 0/s);
    expect(() =>
      tinyConfig(join(root, 'cache'), {
        head: { prototypeInit: 'uniform' },
        loss: { partLocalisation: 1, partLocalisationJoint: true },
      }),
    ).toThrow(/prototypeInit is "uniform"/);
    expect(() =>
      tinyConfig(join(root, 'cache'), {
        joint: { epochs: 0 },
        head: { prototypeInit: 'patches' },
        loss: { partLocalisation: 1, partLocalisationJoint: true },
      }),
    ).toThrow(/joint\.epochs is 0/);
  }, 120_000);
});

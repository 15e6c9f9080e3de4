import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTensorFile } from '../../trainer/src/core/tensor-file.ts';
import { configDifferences, fieldPhases, forbiddenChanges } from '../../trainer/src/run/branch-run.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { trainingSchedule } from '../../trainer/src/run/training-schedule.ts';
import { tinyConfig, tinySyntheticData } from './tiny-run.ts';

process.env.PROTOATLAS_QUIET = '1';

const metrics = async (dir: string) =>
  (await readFile(join(dir, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => {
      // Everything but the time an epoch took.
      const { seconds: _, ...row } = JSON.parse(l);
      return row;
    });

const weights = async (dir: string) => (await loadTensorFile(join(dir, 'model', 'weights.bin'))).tensors;

describe('configDifferences and forbiddenChanges', () => {
  it('name the differing leaves and refuse those an earlier phase or the model read', () => {
    const a = { seed: 0, head: { addOn: [1, 2], prototypesPerClass: 2 }, pushTune: { epochs: 1, lr: { addOn: 1 } } };
    const b = { seed: 0, head: { addOn: [1, 3], prototypesPerClass: 2 }, pushTune: { epochs: 2, lr: { addOn: 1 } } };
    expect(configDifferences(a, b)).toEqual(['head.addOn', 'pushTune.epochs']);
    const schedule = trainingSchedule(tinyConfig('/tmp/unused'));
    const changed = [
      'head.addOn',
      'pushTune.epochs',
      'lastLayer.l1',
      'loss.clusterCost',
      'bundle.enabled',
      'warmup.lr.addOn',
    ];
    expect(forbiddenChanges(changed, schedule, 'push')).toEqual(['head.addOn', 'loss.clusterCost', 'warmup.lr.addOn']);
    expect(forbiddenChanges(changed, schedule, 'pushTune')).toEqual([
      'head.addOn',
      'pushTune.epochs',
      'loss.clusterCost',
      'warmup.lr.addOn',
    ]);
    // The part localisation term acts in push-tune: warm-up and joint do not read it, unless the branched run
    // had it in its joint stage too.
    const config = tinyConfig('/tmp/unused');
    const localising = ['loss.partLocalisation', 'loss.partLocalisationRadius'];
    expect(forbiddenChanges(localising, schedule, 'push', fieldPhases(config))).toEqual([]);
    expect(forbiddenChanges(['loss.partLocalisation'], schedule, 'pushTune', fieldPhases(config))).toEqual([
      'loss.partLocalisation',
    ]);
    const inJoint = { ...config, loss: { ...config.loss, partLocalisation: 1, partLocalisationJoint: true } };
    expect(forbiddenChanges(localising, schedule, 'push', fieldPhases(inJoint))).toEqual(localising);
    expect(forbiddenChanges(['loss.partLocalisationJoint'], schedule, 'warmup', fieldPhases(config))).toEqual([]);
    expect(forbiddenChanges(['loss.partLocalisationJoint'], schedule, 'joint', fieldPhases(config))).toEqual([
      'loss.partLocalisationJoint',
    ]);
    // Before any phase only the model's own fields are fixed.
    expect(forbiddenChanges(['joint.epochs', 'seed'], schedule, 'warmup')).toEqual(['seed']);
  });
});

describe('a run branched from another run after one of its phases', () => {
  it('continues bit-identical with the same config, and with its own settings for the later phases', async () => {
    const dir = await tinySyntheticData(3, 10, 2);
    const data = join(dir, 'data');
    const config = tinyConfig(join(dir, 'cache'), {
      joint: { epochs: 1, batchSize: 16 },
      pushTune: { epochs: 1, batchSize: 16 },
      lastLayer: { epochs: 2, batchSize: 16 },
    });
    const run = { dataDir: data, quiet: true, skipBundle: true };
    const source = join(dir, 'source');
    await trainRun({ ...run, config, outDir: source, resume: false });

    const same = join(dir, 'same');
    const a = await trainRun({
      ...run,
      config,
      outDir: same,
      resume: false,
      branch: { fromDir: source, after: 'push' },
    });
    expect(a.finished).toBe(true);
    expect(await metrics(same)).toEqual(await metrics(source));
    const [ws, wa] = [await weights(source), await weights(same)];
    for (const [name, t] of ws) expect(Array.from(wa.get(name)!.data), name).toEqual(Array.from(t.data));
    const record = JSON.parse(await readFile(join(same, 'branch.json'), 'utf8'));
    expect(record).toMatchObject({ from: source, after: 'push', changed: [] });
    expect(record.checkpointSha256).toMatch(/^[0-9a-f]{64}$/);

    const longer = join(dir, 'longer');
    const changedConfig = { ...config, pushTune: { ...config.pushTune, epochs: 3 } };
    await trainRun({
      ...run,
      config: changedConfig,
      outDir: longer,
      resume: false,
      branch: { fromDir: source, after: 'push' },
    });
    const rows = await metrics(longer);
    expect(rows.map((r) => `${r.stage}${r.epoch}`)).toEqual([
      'warmup1',
      'joint1',
      'pushTune1',
      'pushTune2',
      'pushTune3',
      'lastLayer1',
      'lastLayer2',
    ]);
    // Up to the branch point the record is the source's.
    expect(rows.slice(0, 2)).toEqual((await metrics(source)).slice(0, 2));
    expect(JSON.parse(await readFile(join(longer, 'config.json'), 'utf8')).pushTune.epochs).toBe(3);
    expect(JSON.parse(await readFile(join(longer, 'branch.json'), 'utf8')).changed).toEqual(['pushTune.epochs']);
    // Two more push-tune epochs moved the add-on.
    const wl = await weights(longer);
    const moved = [...ws.keys()].filter((k) => Array.from(wl.get(k)!.data).some((x, i) => x !== ws.get(k)!.data[i]));
    expect(moved.filter((k) => k.startsWith('head.addon'))).not.toEqual([]);
  });

  it('refuses what it cannot honour, naming the field or the file', async () => {
    const dir = await tinySyntheticData(3, 10, 2);
    const data = join(dir, 'data');
    const config = tinyConfig(join(dir, 'cache'), {
      joint: { epochs: 1, batchSize: 16 },
      pushTune: { epochs: 0 },
      lastLayer: { epochs: 1, batchSize: 16 },
    });
    const run = { dataDir: data, quiet: true, skipBundle: true };
    const source = join(dir, 'source');
    await trainRun({ ...run, config, outDir: source, resume: false, stopAfterEpochs: 1 });
    const branch = (after: string) => ({ fromDir: source, after });

    await expect(
      trainRun({ ...run, config, outDir: join(dir, 'b1'), resume: false, branch: branch('push') }),
    ).rejects.toThrow(/source\/checkpoints\/push\.ckpt not found: the run in .* has not finished phase "push"/);
    await expect(
      trainRun({ ...run, config, outDir: join(dir, 'b2'), resume: false, branch: branch('pushtune') }),
    ).rejects.toThrow(/--after pushtune: not a phase of the training schedule \(warmup, joint, push/);
    await expect(
      trainRun({ ...run, config, outDir: join(dir, 'b3'), resume: true, branch: branch('warmup') }),
    ).rejects.toThrow(/pass one of them/);
    await expect(
      trainRun({
        ...run,
        config,
        outDir: join(dir, 'b4'),
        resume: false,
        branch: { fromDir: join(dir, 'nope'), after: 'warmup' },
      }),
    ).rejects.toThrow(/nope\/config\.json not found: --from must name a run directory/);
    const other = { ...config, seed: 3, warmup: { ...config.warmup, epochs: 2 } };
    await expect(
      trainRun({ ...run, config: other, outDir: join(dir, 'b5'), resume: false, branch: branch('warmup') }),
    ).rejects.toThrow(/cannot branch from .* after "warmup": seed, warmup\.epochs differ from that run's config\.json/);
    // The warm-up is done: a branch after it with another joint stage trains.
    const joint2 = { ...config, joint: { ...config.joint, epochs: 2 } };
    const b6 = join(dir, 'b6');
    const done = await trainRun({ ...run, config: joint2, outDir: b6, resume: false, branch: branch('warmup') });
    expect(done.finished).toBe(true);
    expect((await metrics(b6)).map((r) => `${r.stage}${r.epoch}`)).toEqual([
      'warmup1',
      'joint1',
      'joint2',
      'lastLayer1',
    ]);
  });
});

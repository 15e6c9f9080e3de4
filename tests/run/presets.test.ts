/** Every built-in preset resolves to a valid config, and `train --print-config` prints exactly that config. */
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TrainConfigSchema } from '../../trainer/src/config/config.ts';
import { PRESET_NAMES, PRESETS, resolveConfig, unknownFields } from '../../trainer/src/config/presets.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TRAIN_CLI = join(ROOT, 'trainer/src/cli/train.ts');
const run = promisify(execFile);

describe('presets', () => {
  it('are the four documented ones', () => {
    expect([...PRESET_NAMES].sort()).toEqual(['cub200', 'cub200-finetune', 'cub200-paper', 'demo']);
  });

  it.each(PRESET_NAMES)('%s resolves, validates and names itself', (name) => {
    const config = resolveConfig(name);
    expect(config.preset).toBe(name);
    // A parsed config is a fixed point of the schema: nothing left to default or drop.
    expect(TrainConfigSchema.parse(config)).toEqual(config);
    // Every field the preset sets is a config field (the schema would drop a misspelt one silently).
    expect(unknownFields(PRESETS[name], config)).toEqual([]);
  });

  it('derived presets keep what they do not change and change what they say', () => {
    const paper = resolveConfig('cub200-paper');
    const cub = resolveConfig('cub200');
    const finetune = resolveConfig('cub200-finetune');
    expect(paper.backbone).toMatchObject({ kind: 'onnx', compute: 'float', tap: 'auto' });
    expect(cub.backbone).toMatchObject({ kind: 'onnx', compute: 'float', outputStride: 16, trainable: false });
    expect(cub.loss).toEqual(paper.loss);
    expect(cub.head.addOn.map((a) => a.activation)).toEqual(['relu', 'l2norm']);
    expect(cub.joint.epochs).toBe(0);
    expect(cub.joint.lr).toEqual(paper.joint.lr);
    expect(finetune.backbone).toMatchObject({ trainable: true, outputStride: 16 });
    expect(finetune.data.augment.enabled).toBe(true);
    expect(finetune.lastLayer).toEqual(cub.lastLayer);
    expect(finetune.pushTune).toMatchObject({ epochs: 3, batchSize: 32, microBatch: 8, schedule: 'cosine' });
  });

  it('defaults come from the schema: an absent pushTune is the paper (no epochs), nested defaults filled', () => {
    const paper = resolveConfig('cub200-paper');
    expect(paper.pushTune).toEqual({
      epochs: 0,
      batchSize: 80,
      lr: { features: 1e-4, addOn: 3e-3, prototypes: 3e-3, lastLayer: 0 },
      schedule: 'constant',
      stepEpochs: 5,
      gamma: 0.1,
      inputDropout: 0,
      weightDecay: { features: 0, addOn: 0 },
    });
    // The reference code's Adam: weight decay 1e-3 on the add-on (warm-up) and on backbone and add-on (joint).
    expect(paper.warmup.weightDecay).toEqual({ features: 0, addOn: 1e-3 });
    expect(paper.joint.weightDecay).toEqual({ features: 1e-3, addOn: 1e-3 });
    // The measured CPU and fine-tuning recipes have none.
    expect(resolveConfig('cub200').warmup.weightDecay).toEqual({ features: 0, addOn: 0 });
    expect(resolveConfig('cub200-finetune').joint.weightDecay).toEqual({ features: 0, addOn: 0 });
    // Push-tune: the CPU recipe's measured faster rate; the fine-tuning recipe keeps the rate it was measured with.
    expect(resolveConfig('cub200').pushTune.lr).toEqual({ features: 0, addOn: 4e-3, prototypes: 0, lastLayer: 0 });
    expect(resolveConfig('cub200-finetune').pushTune.lr).toEqual({
      features: 0,
      addOn: 2e-3,
      prototypes: 0,
      lastLayer: 0,
    });
    expect(paper.data.augment).toEqual({
      enabled: false,
      rotation: 15,
      shear: 10,
      skew: 0.2,
      cropScale: 0.8,
      probability: 0.5,
      noise: 0,
      cachedCopies: 0,
    });
    expect(paper.prune).toEqual({ mode: 'auto', k: 6, threshold: 3, refitLr: null, refitEpochs: null });
    expect(paper.bundle).toEqual({ enabled: true, nearest: 5, partMetrics: true });
  });

  it("stepEpochs is at least 1: a constant rate is schedule 'constant'", () => {
    expect(() => resolveConfig('demo', { joint: { stepEpochs: 0 } })).toThrow(/- joint\.stepEpochs: .*>0/);
    expect(resolveConfig('demo', { joint: { schedule: 'constant' } }).joint.schedule).toBe('constant');
  });

  it('a name that is only an Object property is not a preset', () => {
    expect(() => resolveConfig('toString')).toThrow(/unknown preset "toString"/);
  });
});

describe('train --print-config', () => {
  it('npm run train -- --preset cub200 --print-config prints the resolved config and trains nothing', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'protoatlas-print-config-'));
    const { stdout } = await run(
      'npm',
      ['run', '--silent', 'train', '--workspace', 'trainer', '--', '--preset', 'cub200', '--print-config'],
      { cwd: ROOT, env: { ...process.env, INIT_CWD: cwd } },
    );
    expect(JSON.parse(stdout)).toEqual(resolveConfig('cub200'));
  });

  it('applies a --config override file, and names a bad field with exit code 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-print-config-'));
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ warmup: { epochs: 2 }, prune: { mode: 'off' } }));
    const { stdout } = await run(process.execPath, [TRAIN_CLI, '--preset', 'demo', '--config', good, '--print-config']);
    const printed = JSON.parse(stdout);
    expect(printed).toEqual(resolveConfig('demo', { warmup: { epochs: 2 }, prune: { mode: 'off' } }));
    expect(printed.warmup.epochs).toBe(2);
    expect(printed.prune.mode).toBe('off');

    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ warmup: { epochz: 2 } }));
    const failed = await run(process.execPath, [TRAIN_CLI, '--preset', 'demo', '--config', bad, '--print-config']).then(
      () => null,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/warmup\.epochz: not a config field/);
  });
});

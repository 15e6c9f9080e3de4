/**
 * Edits of a frozen-backbone run (the CUB path, on a tiny ONNX graph): drop and
 * relabel refit on the similarities stage 3 cached and build the bundle from
 * the parent's pictures, without reading or extracting a training or
 * validation feature (test accuracy still reads the test split's); the
 * accuracy they report is the one the features give.
 */
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '@protoatlas/shared';
import { readFeatureHeader } from '../../trainer/src/backbone/feature-file.ts';
import { readBundle } from '../../trainer/src/bundle/read-bundle.ts';
import { applyEdits } from '../../trainer/src/edit/apply-edits.ts';
import { loadModel } from '../../trainer/src/model/model-file.ts';
import { prepareData } from '../../trainer/src/model/prepare-data.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { accuracy, predict } from '../../trainer/src/stages/predict.ts';
import { tinyQLinearBackbone, tinyOnnxRunConfig } from './tiny-onnx-backbone.ts';
import { tinySyntheticData } from './tiny-run.ts';

process.env.PROTOATLAS_QUIET = '1';

describe('edits of a frozen-backbone run', () => {
  let dir: string;
  let run: string;
  let cache: string;
  let parent: Manifest;

  beforeAll(async () => {
    dir = await tinySyntheticData(4, 16, 6);
    const backbone = join(dir, 'tiny-qlinear.onnx');
    await writeFile(backbone, tinyQLinearBackbone(7));
    cache = join(dir, 'cache');
    const config = tinyOnnxRunConfig(backbone, {
      head: { prototypesPerClass: 3 },
      warmup: { epochs: 3, batchSize: 16 },
      lastLayer: { epochs: 3, batchSize: 32 },
      trainThreads: 1,
      featureCacheDir: cache,
    });
    run = join(dir, 'run');
    await trainRun({ config, dataDir: join(dir, 'data'), outDir: run, resume: false, quiet: true });
    parent = (await readBundle(join(run, 'bundle'))).manifest;
  }, 300_000);

  const feats = async () => (await readdir(cache)).filter((f) => f.endsWith('.feat') || f.endsWith('.parts'));

  it('drop and relabel read no training feature, reuse the pictures, and report the accuracy the features give', async () => {
    expect((await feats()).length).toBeGreaterThan(0);
    // Without the feature files, any read of a feature would extract them again.
    for (const f of await feats()) await rm(join(cache, f), { recursive: true, force: true });
    const [drop, move] = [1, 4];
    const target = (parent.prototypes[move].classId + 1) % parent.classes.length;
    const report = await applyEdits({
      run,
      out: join(dir, 'v2'),
      data: join(dir, 'data'),
      edits: {
        schema: 'protoatlas-edits',
        version: 1,
        model: { id: parent.model.id, version: parent.model.version },
        edits: [
          { action: 'drop', prototype: drop, reason: 'test' },
          { action: 'relabel', prototype: move, classId: target },
        ],
      },
      quiet: true,
    });
    expect(report.similaritiesCached).toBe(true);
    // Only the test split, whose accuracy is not cached, had its features extracted.
    const made = await feats();
    expect(made).toHaveLength(1);
    expect((await readFeatureHeader(join(cache, made[0])))?.header.total).toBe(parent.dataset.test);
    expect(parent.dataset.test).toBeGreaterThan(0);
    const child = (await readBundle(join(dir, 'v2', 'bundle'))).manifest;
    expect(child.model.parent).toEqual({ id: parent.model.id, version: parent.model.version });
    expect(child.prototypes[drop].pruned).toBe(true);
    expect(child.prototypes[move].classId).toBe(target);
    // Every picture and neighbour is the parent's.
    expect(child.prototypes.map((p) => [p.files, p.nearest, p.source])).toEqual(
      parent.prototypes.map((p) => [p.files, p.nearest, p.source]),
    );
    expect(child.dataset.train).toBe(parent.dataset.train);
    expect(child.dataset.val).toBe(parent.dataset.val);

    // Independently: the edited model on freshly extracted validation features.
    const edited = await loadModel(join(dir, 'v2'));
    const data = await prepareData(edited.config, join(dir, 'data'), { quiet: true, splits: ['val'] });
    const expected = accuracy(await predict(edited.head, data.sources.val!));
    await data.frozenBackbone?.dispose();
    expect(child.metrics.val!.n).toBe(expected.n);
    expect(child.metrics.val!.top1).toBeCloseTo(expected.top1, 10);
    expect(child.metrics.val!.top5).toBeCloseTo(expected.top5, 10);
  }, 300_000);
});

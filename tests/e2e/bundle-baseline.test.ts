/**
 * A black box attached to a run's bundle (`npm run bundle -- <run> --baseline <dir>`): the model card
 * gets its accuracy, what it is and the paired comparison on the same validation images; the run keeps
 * the record for later bundles and edited versions; a record scored on other images is refused before
 * anything is written.
 */
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EditsFile, Manifest } from '@protoatlas/shared';
import { BASELINE_FILE, type BaselineRecord } from '../../trainer/src/analysis/baseline-record.ts';
import { buildBundle } from '../../trainer/src/bundle/build-bundle.ts';
import { readBundle } from '../../trainer/src/bundle/read-bundle.ts';
import { loadDataset } from '../../trainer/src/data/load-dataset.ts';
import { applyEdits } from '../../trainer/src/edit/apply-edits.ts';
import { readModelJson } from '../../trainer/src/model/model-file.ts';
import { editFixture, type EditFixture } from './edit-fixture.ts';

process.env.PROTOATLAS_QUIET = '1';

describe('a black-box baseline on the model card', () => {
  let fx: EditFixture;
  let work: string;
  let run: string;
  let parent: Manifest;
  let ids: string[];
  let labels: number[];

  /** A record that gets the first `right` validation images right and the others wrong. */
  const writeRecord = async (dir: string, right: number, order = ids) => {
    const C = parent.classes.length;
    const record: BaselineRecord = {
      method: 'baseline: the backbone fine-tuned with global average pooling + linear softmax (test)',
      val: { n: order.length, top1: right / order.length, top5: 1 },
      valPredictions: {
        ids: order,
        labels,
        predicted: labels.map((y, i) => (i < right ? y : (y + 1) % C)),
      },
    };
    await writeFile(join(dir, BASELINE_FILE), JSON.stringify(record));
  };

  beforeAll(async () => {
    fx = await editFixture();
    parent = (await readBundle(join(fx.run, 'bundle'))).manifest;
    work = await mkdtemp(join(tmpdir(), 'protoatlas-bundle-baseline-'));
    run = join(work, 'run');
    await cp(fx.run, run, { recursive: true });
    const { config } = await readModelJson(run);
    const dataset = await loadDataset(fx.data, {
      valPerClass: config.data.valPerClass,
      metricsPerClass: config.data.metricsPerClass,
      seed: config.seed,
    });
    ids = dataset.splits.val.map((it) => it.id);
    labels = dataset.splits.val.map((it) => it.label);
  }, 300_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('the fixture trains no baseline of its own', () => {
    expect(parent.metrics.baseline).toBeNull();
  });

  it('refuses a record scored on other images before writing anything', async () => {
    const other = join(work, 'shuffled');
    await mkdir(other, { recursive: true });
    await writeRecord(other, 3, [...ids].reverse());
    await expect(buildBundle({ run, data: fx.data, baseline: other, quiet: true })).rejects.toThrow(
      `${join(other, BASELINE_FILE)} was scored on other validation images than ${run}`,
    );
    await expect(stat(join(run, BASELINE_FILE))).rejects.toThrow();
    expect(await readFile(join(run, 'bundle', 'manifest.json'), 'utf8')).toBe(
      await readFile(join(fx.run, 'bundle', 'manifest.json'), 'utf8'),
    );
  });

  it('records its accuracy, what it is and the paired difference, and keeps the record in the run', async () => {
    const dir = join(work, 'black-box');
    await mkdir(dir, { recursive: true });
    await writeRecord(dir, 4);
    const report = await buildBundle({ run, data: fx.data, baseline: dir, quiet: true });
    const b = report.metrics.baseline!;
    const n = ids.length;
    expect(b.top1).toBeCloseTo(4 / n, 12);
    expect(b.top5).toBe(1);
    expect(b.method).toBe('the backbone fine-tuned with global average pooling + linear softmax (test)');
    const model = report.metrics.val!;
    expect(b.paired!.n).toBe(n);
    expect(b.paired!.difference).toBeCloseTo(model.top1 - b.top1, 12);
    expect(b.paired!.onlyModel - b.paired!.onlyBaseline).toBe(Math.round(b.paired!.difference * n));
    expect(b.paired!.interval95[0]).toBeLessThan(b.paired!.difference);
    expect(b.paired!.interval95[1]).toBeGreaterThan(b.paired!.difference);
    expect((await readBundle(join(run, 'bundle'))).manifest.metrics.baseline).toEqual(b);
    expect(await readFile(join(run, BASELINE_FILE), 'utf8')).toBe(await readFile(join(dir, BASELINE_FILE), 'utf8'));

    // Later bundles of the run, and its edited versions, keep the comparison.
    await rm(dir, { recursive: true });
    const again = await buildBundle({ run, data: fx.data, quiet: true });
    expect(again.metrics.baseline).toEqual(b);
    const current = (await readBundle(join(run, 'bundle'))).manifest.model;
    const edits: EditsFile = {
      schema: 'protoatlas-edits',
      version: 1,
      model: { id: current.id, version: current.version },
      edits: [{ action: 'drop', prototype: 0, reason: 'test' }],
    };
    const edited = await applyEdits({ run, edits, out: join(work, 'edited'), data: fx.data, quiet: true });
    expect(await readFile(join(work, 'edited', BASELINE_FILE), 'utf8')).toBe(
      await readFile(join(run, BASELINE_FILE), 'utf8'),
    );
    const card = (await readBundle(join(edited.out, 'bundle'))).manifest.metrics.baseline!;
    expect(card.top1).toBe(b.top1);
    expect(card.method).toBe(b.method);
  }, 300_000);
});

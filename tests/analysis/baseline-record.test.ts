/**
 * A black-box baseline's record (baseline.json): read from its directory or the file, refused with
 * the file's name when it is missing, malformed or scored on other images, and turned into per-image
 * correctness on the images a run was scored on.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BASELINE_FILE,
  type BaselineRecord,
  baselineOnImages,
  readBaselineRecord,
} from '../../trainer/src/analysis/baseline-record.ts';

const record = (over: Partial<BaselineRecord> = {}): BaselineRecord => ({
  method: 'baseline: the backbone fine-tuned with global average pooling + linear softmax',
  preset: 'cub200-finetune',
  val: { n: 4, top1: 0.5, top5: 0.75 },
  valPredictions: { ids: ['a', 'b', 'c', 'd'], labels: [0, 1, 2, 0], predicted: [0, 2, 2, 1] },
  ...over,
});

describe('baseline record', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'protoatlas-baseline-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the record from its directory or from the file itself', async () => {
    await writeFile(join(dir, BASELINE_FILE), JSON.stringify({ ...record(), curve: [{ epoch: 1 }], extra: 1 }));
    const fromDir = await readBaselineRecord(dir);
    const fromFile = await readBaselineRecord(join(dir, BASELINE_FILE));
    expect(fromDir.file).toBe(join(dir, BASELINE_FILE));
    expect(fromFile.file).toBe(fromDir.file);
    expect(fromDir.record.val).toEqual({ n: 4, top1: 0.5, top5: 0.75 });
    expect(fromDir.record.valPredictions?.predicted).toEqual([0, 2, 2, 1]);
  });

  it('names the file and the fix when the record is missing, not JSON or not a record', async () => {
    const empty = join(dir, 'empty');
    await expect(readBaselineRecord(empty)).rejects.toThrow(`${join(empty, BASELINE_FILE)}: not found`);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"method": ');
    await expect(readBaselineRecord(bad)).rejects.toThrow(`${bad}: not valid JSON`);
    const uneven = join(dir, 'uneven.json');
    await writeFile(
      uneven,
      JSON.stringify(record({ valPredictions: { ids: ['a', 'b'], labels: [0], predicted: [0, 1] } })),
    );
    await expect(readBaselineRecord(uneven)).rejects.toThrow(/uneven\.json: not a baseline record \(valPredictions: /);
    const noMethod = join(dir, 'no-method.json');
    await writeFile(noMethod, JSON.stringify({ val: null }));
    await expect(readBaselineRecord(noMethod)).rejects.toThrow(/no-method\.json: not a baseline record \(method: /);
  });

  it('gives per-image correctness and top-1 on the same images', () => {
    const b = baselineOnImages(record(), 'b.json', ['a', 'b', 'c', 'd'], 'runs/x');
    expect(b.correct).toEqual([true, false, true, false]);
    expect(b.top1).toBe(0.5);
    expect(b.top5).toBe(0.75);
    expect(b.method).toMatch(/^baseline: the backbone fine-tuned/);
  });

  it('refuses a record scored on other images, or without per-image predictions', () => {
    expect(() => baselineOnImages(record(), 'b.json', ['a', 'b', 'd', 'c'], 'runs/x')).toThrow(
      /b\.json was scored on other validation images than runs\/x \(4 against 4/,
    );
    expect(() => baselineOnImages(record(), 'b.json', ['a', 'b', 'c'], 'runs/x')).toThrow(/4 against 3/);
    expect(() => baselineOnImages(record({ valPredictions: undefined }), 'b.json', ['a'], 'runs/x')).toThrow(
      /b\.json has no per-image predictions/,
    );
  });

  // The fine-tuned black boxes kept in docs/data are what `--baseline docs/data/...` reads: they must stay valid
  // records whose per-image predictions give the top-1 they report, with no image stored.
  it.each([
    ['docs/data/baseline-finetune', 0.767],
    ['docs/data/baseline-finetune-short', 0.709],
  ])('%s is a record whose predictions give its top-1 (%s)', async (dir, top1) => {
    const { record: kept } = await readBaselineRecord(fileURLToPath(new URL(`../../${dir}`, import.meta.url)));
    expect(kept.preset).toBe('cub200-finetune');
    expect(kept.val?.top1).toBe(top1);
    const ids = kept.valPredictions!.ids;
    expect(new Set(ids).size).toBe(1000);
    const b = baselineOnImages(kept, dir, ids, 'itself');
    expect(b.top1).toBeCloseTo(top1, 12);
    expect(JSON.stringify(kept)).not.toMatch(/\/work\/|\.jpg/);
  });
});

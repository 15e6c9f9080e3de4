/**
 * The before/after table of an edit, as the edit CLI and the edit benches print it: figures per row, the count of
 * consistent prototypes (a share of fewer live prototypes can rise while the count falls), where the explanation
 * metrics were measured, and the concepts' best similarities.
 */
import { describe, expect, it } from 'vitest';
import type { EditReport, VersionFigures } from '../../trainer/src/edit/apply-edits.ts';
import { formatEditReport } from '../../trainer/src/edit/format-edit-report.ts';

const figures = (top1: number, consistency: number | null, live: number): VersionFigures => ({
  val: { top1, top5: 0.9, n: 1000 },
  test: null,
  explanation: {
    purity: 0.5,
    consistency,
    stability: 0.38,
    partCoverage: null,
    measuredOn: { split: 'metrics', images: 2000 },
  },
  livePrototypes: live,
});

const report = (over: Partial<EditReport> = {}): EditReport => ({
  out: '/runs/edited',
  parent: { id: 'cub200', version: 'v1' },
  version: 'v2',
  counts: { drop: 3, relabel: 0, forbid: 0, keep: 0 },
  before: figures(0.605, 0.253, 2000),
  after: figures(0.555, 0.368, 1183),
  forget: null,
  moved: 0,
  similaritiesCached: true,
  concepts: null,
  seconds: { refit: 12.25, bundle: 60 },
  cpuSeconds: 100,
  bundle: null,
  ...over,
});

const row = (text: string, name: string) =>
  text
    .split('\n')
    .find((l) => l.startsWith(name))
    ?.split(/\s{2,}/);

describe('formatEditReport', () => {
  it('prints each figure before and after, with the count of consistent prototypes', () => {
    const text = formatEditReport(report());
    expect(text.split('\n')[0]).toBe('edited cub200 v1 -> v2 in /runs/edited');
    expect(text).toContain('edits: 3 drop, 0 relabel, 0 forbid, 0 keep\n');
    expect(row(text, 'val top-1')).toEqual(['val top-1', '60.5%', '55.5%']);
    expect(row(text, 'consistency')).toEqual(['consistency', '25.3%', '36.8%']);
    expect(row(text, 'live prototypes')).toEqual(['live prototypes', '2000', '1183']);
    // 0.253 x 2000 = 506 and 0.368 x 1183 = 435.3: the share rose, the count fell.
    expect(row(text, 'consistent')).toEqual(['consistent', '506', '435']);
    expect(row(text, 'test top-1')).toEqual(['test top-1', 'n/a', 'n/a']);
    expect(text).toContain('consistency and stability on 2000 metrics images');
    expect(text).toContain('time: refit 12.3s, bundle 60.0s (CPU 100.0s)');
  });

  it('marks unmeasured consistency, and reports moved prototypes and concept similarities for forbid edits', () => {
    const text = formatEditReport(
      report({
        counts: { drop: 0, relabel: 0, forbid: 1, keep: 0 },
        before: figures(0.6, null, 10),
        after: figures(0.58, null, 10),
        forget: [],
        moved: 4,
        concepts: { forbidden: { before: [0.5, 0.7], after: [0.1, 0.3] }, kept: null },
      }),
    );
    expect(row(text, 'consistent')).toEqual(['consistent', 'n/a', 'n/a']);
    expect(text).toContain('1 forbid, 0 keep; 4 prototype(s) moved at the re-push');
    expect(text).toContain(
      'forbidden patches (2), best similarity to a live prototype: mean 0.60, max 0.70 -> mean 0.20, max 0.30',
    );
  });
});

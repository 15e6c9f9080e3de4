import { describe, expect, it } from 'vitest';
import { type EvaluationReport, formatEvaluation } from '../../trainer/src/run/evaluate-run.ts';

const report = (explanations: EvaluationReport['explanations']): EvaluationReport => ({
  model: 'runs/x',
  data: 'data/cub200',
  split: 'metrics',
  n: 4,
  top1: 0.5,
  top5: 0.75,
  perClass: [
    { index: 0, name: 'a', n: 2, top1: 1 },
    { index: 1, name: 'b', n: 2, top1: 0 },
  ],
  skippedFiles: 0,
  explanations,
});

describe('npm run evaluate: the printed report', () => {
  it('prints consistency and stability with their 95% intervals across prototypes', () => {
    const text = formatEvaluation(
      report({
        purity: 0.3234,
        k: 5,
        consistency: 0.253,
        stability: 0.3784,
        interval95: { consistency: [0.234, 0.273], stability: [0.37, 0.386] },
        partCoverage: null,
        notes: [],
      }),
    );
    expect(text).toContain('top-1 50.00%   top-5 75.00%');
    expect(text).toContain(
      'explanations: purity of 5 nearest patches 32.3%, consistency 25.3% [95% 23.4%-27.3%], stability 37.8% [95% 37.0%-38.6%], synthetic part coverage n/a',
    );
  });

  it('says n/a, with no interval, where a split has no part annotations', () => {
    const text = formatEvaluation(
      report({
        purity: 0.5,
        k: 5,
        consistency: null,
        stability: null,
        interval95: null,
        partCoverage: 0.65,
        notes: ['consistency/stability need part annotations'],
      }),
    );
    expect(text).toContain('consistency n/a, stability n/a, synthetic part coverage 65.0%');
    expect(text).toContain('  (consistency/stability need part annotations)');
  });
});

import type { BundleReport } from './build-bundle.ts';
import type { VerifyReport } from './integrity.ts';

export const pct = (x: number | null | undefined) =>
  x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`;
const megabytes = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
export const interval95 = (i: [number, number] | undefined) => (i ? ` [95% ${pct(i[0])}-${pct(i[1])}]` : '');
const on = (m: { split: string; images: number } | null | undefined) =>
  m ? ` (on ${m.images} ${m.split} images)` : '';

const points = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
type Paired = NonNullable<BundleReport['metrics']['baseline']>['paired'];
const paired = (d: Paired) =>
  d ? `; paired ${points(d.difference)} points [95% ${points(d.interval95[0])}, ${points(d.interval95[1])}]` : '';

/** A short human summary of a built bundle. */
export function formatBundleReport(r: BundleReport): string {
  const e = r.metrics.explanation;
  const p = r.metrics.pruning;
  return [
    `bundle written to ${r.dir}`,
    `  ${r.prototypes} prototypes (${r.pruned} pruned), ` +
      `pictures ${megabytes(r.imageBytes)}, bundle ${megabytes(r.totalBytes)}`,
    `  validation top-1 ${pct(r.metrics.val?.top1)} (baseline ${pct(r.metrics.baseline?.top1)}${paired(r.metrics.baseline?.paired)}), top-5 ${pct(r.metrics.val?.top5)}`,
    `  explanations: purity ${pct(e.purity)}, consistency ${pct(e.consistency)}${interval95(e.interval95?.consistency)}, stability ${pct(e.stability)}${interval95(e.interval95?.stability)}${on(e.measuredOn)}, synthetic part coverage ${pct(e.partCoverage)}`,
    p
      ? `  pruning (k=${p.k}, threshold ${p.threshold}): ${p.applied ? `${p.pruned} pruned` : 'not applied'}; val top-1 ${pct(p.before?.top1)} -> ${pct(p.after?.top1)}`
      : '  pruning: not run',
    `  time: ${Object.entries(r.seconds)
      .map(([k, v]) => `${k} ${v.toFixed(1)}s`)
      .join(', ')}`,
  ].join('\n');
}

/** The outcome of `npm run bundle -- --verify`. */
export function formatVerifyReport(r: VerifyReport): string {
  if (!r.problems.length) {
    return `${r.dir}: OK, ${r.verified} files (${megabytes(r.bytes)}) match the manifest's sizes and sha256`;
  }
  const head = `${r.dir}: ${r.problems.length} problem(s); ${r.verified} files match`;
  return [head, ...r.problems.map((p) => `  ${p}`)].join('\n');
}

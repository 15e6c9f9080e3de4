/**
 * The before/after table an edit prints (the edit CLI and the benches that apply edits): accuracy, explanation
 * metrics and live prototypes of the parent and the edited model, the concepts' match to the prototypes, times.
 */
import { formatBundleReport } from '../bundle/format-report.ts';
import type { ConceptMatchChange, EditReport, VersionFigures } from './apply-edits.ts';

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`;

function figures(f: VersionFigures): string[] {
  const e = f.explanation;
  return [
    pct(f.val?.top1),
    pct(f.val?.top5),
    pct(f.test?.top1),
    pct(e?.purity),
    pct(e?.consistency),
    pct(e?.stability),
    pct(e?.partCoverage),
    String(f.livePrototypes),
    // Consistency is a share of the live prototypes: after drops the count tells whether the share rose by loss.
    e?.consistency === null || e?.consistency === undefined
      ? 'n/a'
      : String(Math.round(e.consistency * f.livePrototypes)),
  ];
}

function measuredOn(f: VersionFigures): string[] {
  const m = f.explanation?.measuredOn;
  return m ? [`consistency and stability on ${m.images} ${m.split} images`] : [];
}

function conceptLines(name: string, c: ConceptMatchChange | null): string[] {
  if (!c) return [];
  const stats = (xs: number[]) =>
    `mean ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2)}, max ${Math.max(...xs).toFixed(2)}`;
  return [
    `${name} patches (${c.before.length}), best similarity to a live prototype: ${stats(c.before)} -> ` +
      `${stats(c.after)}`,
  ];
}

export function formatEditReport(r: EditReport): string {
  const names = [
    'val top-1',
    'val top-5',
    'test top-1',
    'purity',
    'consistency',
    'stability',
    'part coverage',
    'live prototypes',
    'consistent',
  ];
  const b = figures(r.before);
  const a = figures(r.after);
  const c = r.counts;
  const lines = [
    `edited ${r.parent.id} ${r.parent.version} -> ${r.version ?? '(no bundle)'} in ${r.out}`,
    `edits: ${c.drop} drop, ${c.relabel} relabel, ${c.forbid} forbid, ${c.keep} ` +
      `keep${r.forget ? `; ${r.moved} prototype(s) moved at the re-push` : ''}`,
    `${''.padEnd(16)} ${'before'.padStart(8)} ${'after'.padStart(8)}`,
    ...names.map((n, i) => `${n.padEnd(16)} ${b[i].padStart(8)} ${a[i].padStart(8)}`),
    ...measuredOn(r.after),
    ...conceptLines('forbidden', r.concepts?.forbidden ?? null),
    ...conceptLines('kept', r.concepts?.kept ?? null),
    `time: ${Object.entries(r.seconds)
      .map(([k, v]) => `${k} ${v.toFixed(1)}s`)
      .join(', ')} (CPU ${r.cpuSeconds.toFixed(1)}s)`,
  ];
  if (r.bundle) lines.push(formatBundleReport(r.bundle));
  return lines.join('\n');
}

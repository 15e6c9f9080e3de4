/**
 * The run summary: summary.json's content and the table printed at the end of training,
 * one row per phase of the schedule.
 */
import { lastLayerSparsity } from '../stages/last-layer.ts';
import { accuracy, predict, type Accuracy } from '../stages/predict.ts';
import type { StageResult } from './checkpoint.ts';
import type { TrainContext } from './train-context.ts';
import type { TrainingPhase } from './training-phase.ts';

export interface TrainSummary {
  preset: string;
  backend: string;
  dataset: {
    layout: string;
    root: string;
    classes: number;
    train: number;
    val: number;
    test: number;
    skippedFiles: number;
    skipped: { path: string; reason: string }[];
  };
  baseline: { top1: number; top5: number } | null;
  /** Per phase (and 'init'), in the order they ran. */
  stages: Partial<Record<string, StageResult>>;
  /** Test is reported only; nothing is selected on it. */
  final: { val: Accuracy | null; test: Accuracy | null };
  lastLayerWrongClassNearZero: number | null;
  /** Share of wrong-class weights exactly 0 (stage 3's L1 with the proximal solver). */
  lastLayerWrongClassZero: number | null;
  pruning: { applied: boolean; candidates: number; note: string } | null;
  seconds: Record<string, number>;
  prototypes: number;
  finished: boolean;
}

export async function buildSummary(ctx: TrainContext, backend: string, finished: boolean): Promise<TrainSummary> {
  const { data, meta, head } = ctx;
  const ds = data.dataset;
  const skipped = [...ds.skipped, ...data.skipped];
  return {
    preset: ctx.config.preset,
    backend,
    dataset: {
      layout: ds.layout,
      root: ds.root,
      classes: ds.classes.length,
      train: ds.splits.train.length,
      val: ds.splits.val.length,
      test: ds.splits.test.length,
      skippedFiles: skipped.length,
      skipped,
    },
    baseline: meta.baseline ?? null,
    stages: meta.stageResults,
    final: {
      val: finished ? await ctx.evalVal() : null,
      test: finished && data.sources.test?.n ? accuracy(await predict(head, data.sources.test)) : null,
    },
    lastLayerWrongClassNearZero: finished ? lastLayerSparsity(head) : null,
    lastLayerWrongClassZero: finished ? lastLayerSparsity(head, 0) : null,
    pruning: meta.pruning
      ? { applied: meta.pruning.applied, candidates: meta.pruning.candidates.length, note: meta.pruning.note }
      : null,
    seconds: {
      ...(meta.seconds as Record<string, number>),
      total: Object.values(meta.seconds).reduce((a: number, b) => a + (b ?? 0), 0),
    },
    prototypes: head.numPrototypes,
    finished,
  };
}

const pct = (x: number | undefined | null) =>
  x === undefined || x === null || Number.isNaN(x) ? '  n/a' : `${(100 * x).toFixed(1).padStart(5)}%`;

/** The summary table on stderr: the baseline, the initial head, then one row per phase of `schedule`. */
export function printSummary(s: TrainSummary, schedule: TrainingPhase[], quiet?: boolean): void {
  if (quiet) return;
  const row = (label: string, r: StageResult | undefined): [string, number?, number?, number?] => [
    label,
    r?.top1,
    r?.top5,
    r?.seconds,
  ];
  const rows: [string, number?, number?, number?][] = [
    ['baseline (GAP + linear)', s.baseline?.top1, s.baseline?.top5, undefined],
    row('after init', s.stages.init),
    ...schedule.map((p) => row(p.summaryLabel, s.stages[p.name])),
  ];
  const cells = ([name, t1, t5, sec]: [string, number?, number?, number?]) =>
    `${name.padEnd(26)} ${pct(t1).padStart(9)} ${pct(t5).padStart(7)} ` +
    `${sec === undefined ? '' : `${sec.toFixed(0)}s`.padStart(7)}`;
  const { dataset: d, final } = s;
  const lines = [
    `ProtoAtlas run summary (preset ${s.preset}, ${s.prototypes} prototypes, ${s.backend})`,
    `data: ${d.layout} ${d.classes} classes, train ${d.train}, val ${d.val}, test ${d.test}; ` +
      `skipped files: ${d.skippedFiles}`,
    `${'stage'.padEnd(26)} ${'val top-1'.padStart(9)} ${'top-5'.padStart(7)} ${'time'.padStart(7)}`,
    ...rows.map(cells),
    ...(final.test
      ? [
          `test split (${final.test.n} images, reported only): top-1 ${pct(final.test.top1).trim()}, ` +
            `top-5 ${pct(final.test.top5).trim()}`,
        ]
      : []),
    `wrong-class last-layer weights exactly 0: ${pct(s.lastLayerWrongClassZero ?? undefined)}; ` +
      `near 0 (|w| < 1e-3): ${pct(s.lastLayerWrongClassNearZero ?? undefined)}`,
    `total time ${s.seconds.total.toFixed(0)}s`,
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

import type { SplitName } from '../data/types.ts';
import { accuracy, predict, type Accuracy } from '../stages/predict.ts';
import { initBackend } from '../tf/backend.ts';
import { loadModel, readModelJson } from '../model/model-file.ts';
import { prepareData } from '../model/prepare-data.ts';
import { ModelRunner } from '../analysis/model-runner.ts';
import { splitExplanationMetrics, type SplitExplanationMetrics } from '../analysis/split-metrics.ts';
import { interval95, pct } from '../bundle/format-report.ts';

export interface EvaluationReport {
  model: string;
  data: string;
  split: SplitName;
  n: number;
  top1: number;
  top5: number;
  perClass: { index: number; name: string; n: number; top1: number | null }[];
  skippedFiles: number;
  explanations: SplitExplanationMetrics | null;
}

/** Top-1/top-5/per-class accuracy of a saved model on one split of any supported dataset. */
export async function evaluateModel(opts: {
  model: string;
  data: string;
  split: SplitName;
  quiet?: boolean;
  explanations?: boolean;
}): Promise<EvaluationReport> {
  const { config } = await readModelJson(opts.model);
  await initBackend(config.backend, { quiet: opts.quiet });
  const loaded = await loadModel(opts.model);
  const prepared = await prepareData(loaded.config, opts.data, {
    quiet: opts.quiet,
    splits: [opts.split],
    backboneWeights: loaded.backboneWeights,
  });
  const ds = prepared.dataset;
  if (ds.classes.length !== loaded.json.classes.length || ds.classes.some((c, i) => c !== loaded.json.classes[i])) {
    throw new Error(
      `the dataset at ${opts.data} has ${ds.classes.length} classes that do not match the model's ${loaded.json.classes.length} (first: "${loaded.json.classes[0]}" vs "${ds.classes[0]}")`,
    );
  }
  const source = prepared.sources[opts.split]!;
  if (!source.n) {
    throw new Error(
      `split "${opts.split}" of ${opts.data} has no images${opts.split === 'test' ? ' (this copy has no test split: point --data at a full CUB-200-2011 folder, or use --split val)' : ''}`,
    );
  }
  const acc: Accuracy = accuracy(await predict(loaded.head, source));
  const pruned = new Array<boolean>(loaded.head.numPrototypes).fill(false);
  for (const p of loaded.json.pruned ?? []) pruned[p.prototype] = true;
  const explanations =
    opts.explanations === false
      ? null
      : await splitExplanationMetrics({
          head: loaded.head,
          source,
          items: prepared.itemsBySplit[opts.split],
          dataset: ds,
          runner: new ModelRunner(loaded.head, {
            frozen: prepared.frozenBackbone,
            trainable: prepared.trainableBackbone,
          }),
          pruned,
          k: loaded.config.bundle.nearest || 5,
          quiet: opts.quiet,
        });
  await prepared.frozenBackbone?.dispose();
  const counts = new Array<number>(ds.classes.length).fill(0);
  for (const y of source.labels) counts[y]++;
  return {
    model: opts.model,
    data: opts.data,
    split: opts.split,
    n: acc.n,
    top1: acc.top1,
    top5: acc.top5,
    perClass: ds.classes.map((name, index) => ({
      index,
      name,
      n: counts[index],
      top1: Number.isNaN(acc.perClass[index]) ? null : acc.perClass[index],
    })),
    skippedFiles: prepared.skipped.length,
    explanations,
  };
}

export function formatEvaluation(r: EvaluationReport): string {
  const pc = r.perClass.filter((c) => c.n > 0 && c.top1 !== null).sort((a, b) => a.top1! - b.top1!);
  const lines = [
    `${r.split} split of ${r.data}: ${r.n} images${r.skippedFiles ? ` (${r.skippedFiles} unreadable files skipped)` : ''}`,
    `top-1 ${(100 * r.top1).toFixed(2)}%   top-5 ${(100 * r.top5).toFixed(2)}%`,
    `hardest classes: ${pc
      .slice(0, 5)
      .map((c) => `${c.name} ${(100 * c.top1!).toFixed(0)}%`)
      .join(', ')}`,
    `easiest classes: ${pc
      .slice(-5)
      .reverse()
      .map((c) => `${c.name} ${(100 * c.top1!).toFixed(0)}%`)
      .join(', ')}`,
  ];
  const e = r.explanations;
  if (e) {
    lines.push(
      `explanations: purity of ${e.k} nearest patches ${pct(e.purity)}, consistency ${pct(e.consistency)}${interval95(e.interval95?.consistency)}, stability ${pct(e.stability)}${interval95(e.interval95?.stability)}, synthetic part coverage ${pct(e.partCoverage)}`,
    );
    for (const n of e.notes) lines.push(`  (${n})`);
  }
  return lines.join('\n');
}

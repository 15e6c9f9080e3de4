/**
 * Finished runs scored on the same validation images, each against the same-backbone baseline and
 * against the first run: top-1, and the paired difference with its 95% interval (the images only
 * one of the two gets right decide it). The frozen-feature baseline is retrained here exactly as the
 * first run trained it (same seed, same order of random draws), and its accuracy is checked against
 * the one that run recorded; `--baseline` reads a fine-tuned baseline's per-image predictions instead
 * (`npm run baseline` with a trainable-backbone preset). Fine-tuned runs, and runs whose backbone is
 * configured otherwise (an input blur), are scored through their own backbone.
 *
 *   node trainer/bench/compare-runs.ts <run dir> [<run dir> ...] [--data <dataset dir>] [--baseline <baseline dir>]
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { baselineOnImages, readBaselineRecord } from '../src/analysis/baseline-record.ts';
import { correctTop1, pairedDifference, type PairedDifference } from '../src/analysis/paired-accuracy.ts';
import { answerHelp } from '../src/cli/args.ts';
import { referenceDataDir } from '../src/core/data-path.ts';
import { Rng } from '../src/core/rng.ts';
import { readJson, runPaths } from '../src/core/run-dir.ts';
import { loadModel, readModelJson } from '../src/model/model-file.ts';
import { prepareData } from '../src/model/prepare-data.ts';
import { linearLogits, pooledFeatures } from '../src/stages/linear-probe.ts';
import { predict } from '../src/stages/predict.ts';
import { newRunHead, trainBaselineProbe } from '../src/run/train-run.ts';
import { initBackend } from '../src/tf/backend.ts';

const USAGE = `usage: node_modules/.bin/node trainer/bench/compare-runs.ts <run dir> [<run dir> ...] [--data <dataset dir>] [--baseline <baseline dir>]

Finished runs on the same validation images: top-1 of each, and the paired difference (95% interval)
against the same-backbone baseline and against the first run. Without --baseline the frozen-feature
baseline is retrained as the first run trained it; --baseline reads <dir>/baseline.json of a fine-tuned
baseline (npm run baseline --workspace trainer -- --preset cub200-finetune ...).`;
answerHelp(import.meta, USAGE);

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { data: { type: 'string' }, baseline: { type: 'string' } },
});
if (!positionals.length) {
  console.log(USAGE);
  process.exit(1);
}
const runs = positionals.map((r) => resolve(r));
// Every run is checked before the long work starts: a missing model is named at once.
const [first] = await Promise.all(runs.map((r) => readModelJson(r)));
const dataDir = values.data ?? join(referenceDataDir(), 'cub200');
await initBackend(first.config.backend, { quiet: true });

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const pts = (d: PairedDifference) =>
  `${(100 * d.difference).toFixed(1).padStart(5)} [${(100 * d.interval95[0]).toFixed(1)}, ${(100 * d.interval95[1]).toFixed(1)}]` +
  ` (+${d.onlyA}/-${d.onlyB})`;

const config = first.config;
const data = await prepareData(config, dataDir, { quiet: true, splits: values.baseline ? ['val'] : ['train', 'val'] });
const C = data.dataset.classes.length;
const valIds = data.itemsBySplit.val.map((it) => it.id);
const { baseline, recorded, label } = values.baseline
  ? await fineTunedBaseline(values.baseline)
  : await frozenBaseline();
const baselineTop1 = baseline.filter(Boolean).length / baseline.length;

/** The frozen-feature baseline as the first run trained it: its head's initial draws come first from the same stream. */
async function frozenBaseline() {
  const rng = new Rng(config.seed);
  newRunHead(config, data, rng).dispose();
  const { probe } = await trainBaselineProbe(data, config, rng, { quiet: true });
  const val = await pooledFeatures(data.sources.val!, { flip: false, quiet: true });
  const summary = await readJson<{ baseline?: { top1: number } | null }>(runPaths(runs[0]).summary);
  return {
    baseline: correctTop1(linearLogits(probe, val.x, val.n), val.labels, C),
    recorded: summary.baseline?.top1,
    label: 'baseline (GAP + linear)',
  };
}

/** A fine-tuned baseline's recorded predictions, checked to be on these validation images. */
async function fineTunedBaseline(dir: string) {
  const { file, record } = await readBaselineRecord(dir);
  return {
    baseline: baselineOnImages(record, file, valIds, runs[0]).correct,
    recorded: record.val?.top1,
    label: 'fine-tuned baseline',
  };
}

console.log(
  `${valIds.length} validation images; 95% intervals of paired differences in points (+ only this run right / - only the other)`,
);
console.log(
  `${'model'.padEnd(28)} ${'top-1'.padStart(6)}   ${'against the baseline'.padEnd(30)} against ${runs[0].split('/').pop()}`,
);
console.log(
  `${label.padEnd(28)} ${pct(baselineTop1).padStart(6)}   ` +
    (recorded === undefined ? '' : `(recorded: ${pct(recorded)})`),
);
let reference: boolean[] | null = null;
for (const run of runs) {
  const loaded = await loadModel(run);
  if (loaded.json.classes.length !== C) throw new Error(`${run}: ${loaded.json.classes.length} classes, the data ${C}`);
  // A fine-tuned run sees the images through its own backbone weights, a run with another backbone
  // (an input blur, another output stride) through its own network.
  const sameBackbone = JSON.stringify(loaded.config.backbone) === JSON.stringify(config.backbone);
  const own =
    loaded.backboneWeights.size || !sameBackbone
      ? await prepareData(loaded.config, dataDir, {
          quiet: true,
          splits: ['val'],
          backboneWeights: loaded.backboneWeights,
        })
      : data;
  if (own.itemsBySplit.val.some((it, i) => it.id !== valIds[i]))
    throw new Error(`${run} holds out other validation images than ${runs[0]} (another seed or data split)`);
  const p = await predict(loaded.head, own.sources.val!);
  const correct = correctTop1(p.logits, p.labels, C);
  loaded.head.dispose();
  reference ??= correct;
  const top1 = correct.filter(Boolean).length / correct.length;
  const vsFirst = run === runs[0] ? '' : pts(pairedDifference(correct, reference));
  console.log(
    `${run.split('/').pop()!.padEnd(28)} ${pct(top1).padStart(6)}   ${pts(pairedDifference(correct, baseline)).padEnd(30)} ${vsFirst}`,
  );
}

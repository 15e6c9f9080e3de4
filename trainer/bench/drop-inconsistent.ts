/**
 * Dropping the prototypes that land on no steady part of their class's training images: each live prototype's
 * most covered part and its frequency (Huang et al.'s consistency, measured on the run's training images with
 * their CUB part annotations), then a drop edit for every prototype whose frequency is below `--min-frequency`,
 * except each class's `--keep-per-class` most consistent ones. The edit refits the last layer; the parent's
 * and the edited model's accuracy and explanation metrics (where the bundle measures them: the metrics split,
 * else validation) are printed side by side, with the count of consistent prototypes beside their share.
 *
 *   node_modules/.bin/node trainer/bench/drop-inconsistent.ts <run dir> <out dir> [--data <CUB dir>]
 *       [--min-frequency 0.8] [--keep-per-class 1] [--refit-lr <stage 3's>] [--refit-epochs <stage 3's>]
 *
 * The training images' annotations choose; the held-out images' only score the result, as ProtoPNet's own
 * pruning chooses on training patches.
 */
import { parseArgs } from 'node:util';
import { loadModelRunner } from '../src/analysis/load-model-runner.ts';
import { inconsistentPrototypes } from '../src/analysis/inconsistent-prototypes.ts';
import { partMetricsWhereAnnotated } from '../src/analysis/part-metrics.ts';
import { answerHelp, benchNumber, orUsageExit, refitFlags } from '../src/cli/args.ts';
import { applyEdits } from '../src/edit/apply-edits.ts';
import { initBackend } from '../src/tf/backend.ts';
import { openRunToEdit, printEditReport, writeEditsFile } from './edit-bench.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/drop-inconsistent.ts <run dir> <out dir> [--data <CUB dir>]
         [--min-frequency 0.8] [--keep-per-class 1] [--refit-lr <stage 3's>] [--refit-epochs <stage 3's>]

Drops the prototypes whose most covered part, on their class's training images, is covered less often than
--min-frequency (keeping each class's --keep-per-class best), refits the last layer, and prints accuracy and
explanation metrics before and after.`,
);

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    data: { type: 'string' },
    'min-frequency': { type: 'string', default: '0.8' },
    'keep-per-class': { type: 'string', default: '1' },
    'refit-lr': { type: 'string' },
    'refit-epochs': { type: 'string' },
  },
});
if (positionals.length !== 2) {
  console.error('usage: drop-inconsistent.ts <run dir> <out dir> [--data <CUB dir>] [--min-frequency 0.8]');
  process.exit(2);
}
const minFrequency = benchNumber('min-frequency', values['min-frequency'], {})!;
const keepPerClass = benchNumber('keep-per-class', values['keep-per-class'], {})!;
try {
  // The selection's own checks, on no prototypes, before the slow pass over the training images.
  inconsistentPrototypes([], minFrequency, keepPerClass);
} catch (e) {
  console.error(
    `--min-frequency ${values['min-frequency']} --keep-per-class ${values['keep-per-class']}: ${(e as Error).message}`,
  );
  process.exit(2);
}
const refit = orUsageExit(() => refitFlags(values['refit-lr'], values['refit-epochs']));
const opened = await openRunToEdit(positionals[0], positionals[1], values.data);
if (!opened) process.exit(0);
const { run, out, data, config, splits, parent } = opened;
await initBackend(config.backend);
const pruned = parent.prototypes.map((p) => p.pruned);
const { runner } = await loadModelRunner(run);
const onTrain = await partMetricsWhereAnnotated(runner, data, splits.train, { pruned });
if (!onTrain) {
  console.error(`${data}: no CUB part annotations for the run's training images (parts/part_locs.txt)`);
  process.exit(1);
}
console.log(
  `on the ${onTrain.images} training images: consistency ${(100 * onTrain.consistency).toFixed(1)}% of ` +
    `${onTrain.perPrototype.length} prototypes`,
);

const drops = inconsistentPrototypes(onTrain.perPrototype, minFrequency, keepPerClass);
console.log(
  `dropping ${drops.length} of ${onTrain.perPrototype.length} prototypes (most covered part below ` +
    `${minFrequency} of their class's training images; each class keeps its ${keepPerClass} best)`,
);
const editsPath = await writeEditsFile(
  out,
  parent,
  drops.map((d) => ({
    action: 'drop' as const,
    prototype: d.prototype,
    reason: `covers one part on ${(100 * d.frequency).toFixed(0)}% of its class's training images`,
  })),
);
const report = await applyEdits({ run, edits: editsPath, out, data, refit });
printEditReport(report, editsPath);

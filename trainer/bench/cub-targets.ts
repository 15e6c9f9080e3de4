/**
 * Benchmark of the CUB model-quality targets. With a preset it runs that preset
 * end to end (features, stages, bundle) on the reference CUB copy; with
 * `--run <dir>` it reads a finished run and its bundle instead. It prints wall
 * time, peak memory, validation accuracy beside the same-backbone baseline, the
 * patch grid, the median prototype box, repeated prototypes, last-layer sparsity and the
 * explanation metrics with their intervals.
 *
 *   node trainer/bench/cub-targets.ts [preset=cub200] [out=runs/bench-<preset>] [--config overrides.json]
 *   node trainer/bench/cub-targets.ts --run runs/cub200 [--baseline runs/baseline-finetune]
 *
 * A fine-tuned run records no baseline of its own: `--baseline` names the directory of the fine-tuned
 * black box (`npm run baseline` with the same preset) to print beside it; without it, the black box the
 * run's bundle was compared with (`npm run bundle -- <run> --baseline`) is printed, with the card's paired difference.
 * Needs ../shared/data (or $PROTOPNET_DATA). A second run reuses the feature cache;
 * delete .cache/features to time extraction too.
 */
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseManifest, type Manifest } from '@protoatlas/shared';
import { referenceDataDir } from '../src/core/data-path.ts';
import { resolveConfig } from '../src/config/presets.ts';
import { exists, readJson, runPaths } from '../src/core/run-dir.ts';
import { trainRun, type TrainSummary } from '../src/run/train-run.ts';
import { answerHelp } from '../src/cli/args.ts';
import { prototypeRedundancy, pushedPrototypes } from '../src/analysis/prototype-redundancy.ts';
import { readBaselineRecord } from '../src/analysis/baseline-record.ts';
import { readModelJson } from '../src/model/model-file.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/cub-targets.ts [preset=cub200] [out=runs/bench-<preset>] \\
         [--config overrides.json]
       node_modules/.bin/node trainer/bench/cub-targets.ts --run <run dir> [--baseline <baseline dir>]

The CUB model-quality targets: trains the preset on ../shared/data/cub200 (or reads a finished run) and prints
wall time, peak memory, accuracy beside the baseline, grid, box size, sparsity and explanation metrics.`,
);

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { run: { type: 'string' }, config: { type: 'string' }, baseline: { type: 'string' } },
});
const pct = (x: number | null | undefined) =>
  x === undefined || x === null || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`;

let dir: string;
let wall: number | null = null;
let peakGb: number | null = null;
if (values.run) {
  dir = resolve(values.run);
} else {
  const preset = positionals[0] ?? 'cub200';
  dir = resolve(positionals[1] ?? `runs/bench-${preset}`);
  const data = join(referenceDataDir(), 'cub200');
  if (!(await exists(data))) {
    console.log(`skipped: ${data} not found (set PROTOPNET_DATA to the folder holding cub200/)`);
    process.exit(0);
  }
  const override = values.config ? JSON.parse(await readFile(values.config, 'utf8')) : undefined;
  await rm(dir, { recursive: true, force: true });
  const t0 = Date.now();
  await trainRun({ config: resolveConfig(preset, override), dataDir: data, outDir: dir, resume: false });
  wall = (Date.now() - t0) / 1000;
  peakGb = process.resourceUsage().maxRSS / 1024 / 1024;
}

const paths = runPaths(dir);
const summary = await readJson<TrainSummary>(paths.summary);
const manifestPath = join(paths.bundle, 'manifest.json');
const manifest: Manifest | null = (await exists(manifestPath))
  ? parseManifest(JSON.parse(await readFile(manifestPath, 'utf8')), manifestPath)
  : null;

/** Median share of the image that a prototype's box (95th-percentile activation region) covers. */
function medianBoxShare(m: Manifest): number | null {
  const shares = m.prototypes
    .filter((p) => !p.pruned && p.source)
    .map((p) => (p.source!.box.w * p.source!.box.h) / (p.source!.width * p.source!.height))
    .sort((a, b) => a - b);
  return shares.length ? shares[Math.floor(shares.length / 2)] : null;
}

const e = manifest?.metrics.explanation;
const ci = (i: [number, number] | undefined) => (i ? ` (95% ${pct(i[0])}-${pct(i[1])})` : '');
console.log(`\n== ${summary.preset}: ${dir}`);
if (wall !== null)
  console.log(
    `wall time             ${(wall / 60).toFixed(1)} min (target <= 30)  [features ${summary.seconds.features?.toFixed(0)}s]`,
  );
else
  console.log(
    `training time         ${(summary.seconds.total / 60).toFixed(1)} min (stages, from summary.json; bundle not included)`,
  );
if (peakGb !== null) console.log(`peak memory (RSS)     ${peakGb.toFixed(2)} GB (target <= 8)`);
// A black box given here, or the one kept in the run when its bundle was compared with it.
const blackBoxFile = values.baseline ?? ((await exists(paths.baseline)) ? paths.baseline : null);
const blackBox = blackBoxFile ? (await readBaselineRecord(blackBoxFile)).record : null;
if (blackBox) console.log(`baseline val top-1    ${pct(blackBox.val?.top1)} (${blackBox.method})`);
else console.log(`baseline val top-1    ${pct(summary.baseline?.top1)} (same backbone, GAP + linear)`);
console.log(`after warm-up         ${pct(summary.stages.warmup?.top1)}`);
console.log(`after push            ${pct(summary.stages.push?.top1)}`);
console.log(`after push-tune       ${pct(summary.stages.pushTune?.top1)}`);
console.log(
  `final val top-1       ${pct(summary.final.val?.top1)} (target >= baseline; goal 75%)   top-5 ${pct(summary.final.val?.top5)}`,
);
const paired = manifest?.metrics.baseline?.paired;
if (paired)
  console.log(
    `against the baseline  ${(100 * paired.difference).toFixed(1)} points paired on ${paired.n} images ` +
      `(95% ${(100 * paired.interval95[0]).toFixed(1)} to ${(100 * paired.interval95[1]).toFixed(1)}; ` +
      `+${paired.onlyModel}/-${paired.onlyBaseline} images only one gets right), from the model card`,
  );
console.log(`wrong-class weights   ${pct(summary.lastLayerWrongClassZero)} exactly 0 (target >= 90%)`);
const r = prototypeRedundancy(pushedPrototypes((await readModelJson(dir)).json));
console.log(
  `repeated prototypes   ${r.samePatch} on a class-mate's patch, ${r.adjacent} within one cell of one, ` +
    `${r.sameImage} on a class-mate's image (of ${r.prototypes})`,
);
if (manifest) {
  const g = manifest.featureGrid;
  const box = medianBoxShare(manifest);
  console.log(`patch grid            ${g.height}x${g.width}x${g.channels} (target >= 14x14)`);
  console.log(`median prototype box  ${pct(box)} of the image (target <= 12.5%)`);
  console.log(`purity                ${pct(e?.purity)}`);
  console.log(`consistency           ${pct(e?.consistency)}${ci(e?.interval95?.consistency)}`);
  console.log(`stability             ${pct(e?.stability)}${ci(e?.interval95?.stability)} (goal >= 60%)`);
  console.log(`measured on           ${e?.measuredOn ? `${e.measuredOn.images} ${e.measuredOn.split} images` : 'n/a'}`);
} else {
  console.log(
    `no bundle in ${paths.bundle}: grid, boxes and explanation metrics need one (npm run bundle --workspace trainer -- ${dir})`,
  );
}

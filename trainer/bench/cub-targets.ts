/**
 * Benchmark of the CUB targets: runs a preset end to end (features,
 * stage 1, push, last layer) on the reference CUB copy and prints wall time,
 * peak memory and validation accuracy beside the same-backbone baseline.
 *
 *   node trainer/bench/cub-targets.ts [preset=cub200] [out=runs/bench-<preset>]
 *
 * Needs ../shared/data (or $PROTOPNET_DATA). A second run reuses the feature cache;
 * delete .cache/features to time extraction too.
 */
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { referenceDataDir } from '../src/run/data-path.ts';
import { resolveConfig } from '../src/run/presets.ts';
import { exists } from '../src/run/run-dir.ts';
import { trainRun } from '../src/run/train-run.ts';

const preset = process.argv[2] ?? 'cub200';
const out = resolve(process.argv[3] ?? `runs/bench-${preset}`);
const data = join(referenceDataDir(), 'cub200');
if (!(await exists(data))) {
  console.log(`skipped: ${data} not found (set PROTOPNET_DATA to the folder holding cub200/)`);
  process.exit(0);
}
await rm(out, { recursive: true, force: true });
const t0 = Date.now();
const summary = await trainRun({ config: resolveConfig(preset), dataDir: data, outDir: out, resume: false });
const wall = (Date.now() - t0) / 1000;
const peakGb = process.resourceUsage().maxRSS / 1024 / 1024;
const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`);
console.log(`\n== ${preset} on ${data}`);
console.log(`wall time            ${(wall / 60).toFixed(1)} min (target <= 20)  [features ${summary.seconds.features?.toFixed(0)}s]`);
console.log(`peak memory (RSS)    ${peakGb.toFixed(2)} GB (target <= 8)`);
console.log(`baseline val top-1   ${pct(summary.baseline?.top1)}`);
console.log(`after warm-up/joint  ${pct(summary.stages.joint?.top1 ?? summary.stages.warmup?.top1)}`);
console.log(`after push           ${pct(summary.stages.push?.top1)}`);
console.log(`final val top-1      ${pct(summary.final.val?.top1)} (target >= 60%)   top-5 ${pct(summary.final.val?.top5)}`);
console.log(`run directory        ${out}`);

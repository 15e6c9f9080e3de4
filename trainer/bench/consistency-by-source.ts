/**
 * Explanation metrics of a bundle's prototypes grouped by where push took them from: the distance
 * (input pixels, the larger axis) from the source patch's centre to the nearest visible annotated
 * part of its training image. Prints, per group, how many prototypes, the share that is consistent,
 * the mean share of images on which the prototype's region covers no part, and the mean frequency of
 * its most covered part, from the bundle's per-prototype figures (measured where the bundle measured
 * them: the metrics split, else validation).
 *
 *   node_modules/.bin/node trainer/bench/consistency-by-source.ts <run dir> [--data ../shared/data/cub200]
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseManifest } from '@protoatlas/shared';
import { answerHelp } from '../src/cli/args.ts';
import { referenceDataDir } from '../src/core/data-path.ts';
import { exists, runPaths } from '../src/core/run-dir.ts';
import { loadCubParts } from '../src/data/cub-parts.ts';
import { nearestPartDistance } from '../src/stages/part-candidates.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/consistency-by-source.ts <run dir> [--data <CUB dir>]

Consistency, no-part share and top-part frequency of the bundle's prototypes, grouped by the distance from
each prototype's source patch to the nearest annotated part of its training image.`,
);

const { values, positionals } = parseArgs({ allowPositionals: true, options: { data: { type: 'string' } } });
if (positionals.length !== 1) {
  console.error('usage: consistency-by-source.ts <run dir> [--data <CUB dir>]');
  process.exit(2);
}
const data = resolve(values.data ?? join(referenceDataDir(), 'cub200'));
if (!(await exists(data))) {
  console.log(`skipped: ${data} not found (pass --data or set PROTOPNET_DATA to the folder holding cub200/)`);
  process.exit(0);
}
const manifestPath = join(runPaths(resolve(positionals[0])).bundle, 'manifest.json');
if (!(await exists(manifestPath))) {
  console.error(`${manifestPath} not found: build the run's bundle first (npm run bundle --workspace trainer)`);
  process.exit(1);
}
const manifest = parseManifest(JSON.parse(await readFile(manifestPath, 'utf8')), manifestPath);
const live = manifest.prototypes.filter((p) => !p.pruned && p.parts && p.source);
if (live.length === 0) {
  console.error(`${manifestPath}: no prototype has part metrics (the bundle was built without part annotations)`);
  process.exit(1);
}
const ids = [...new Set(live.map((p) => p.source!.imageId))];
// loadCubParts reads only the ids (and the layout's boxes); the paths are never opened.
const parts = await loadCubParts(
  data,
  ids.map((id) => ({ id, path: '', label: 0 })),
);
if (!parts) {
  console.error(`${data}: no CUB part annotations (parts/part_locs.txt)`);
  process.exit(1);
}
const pointsOf = new Map(ids.map((id, i) => [id, parts.perItem[i]]));
const grid = {
  height: manifest.featureGrid.height,
  width: manifest.featureGrid.width,
  inputSize: manifest.preprocessing.size,
};

const GROUPS: [number, number][] = [
  [0, 8],
  [8, 16],
  [16, 36],
  [36, Infinity],
];
const rows = live.map((p) => {
  const s = p.source!;
  const d = nearestPartDistance(pointsOf.get(s.imageId) ?? [], s, grid, s.patch.row, s.patch.col);
  return { d, parts: p.parts! };
});
const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(7);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(
  `${manifest.model.id}: ${live.length} prototypes, metrics on ${manifest.metrics.explanation?.measuredOn?.images ?? '?'} ${manifest.metrics.explanation?.measuredOn?.split ?? ''} images`,
);
console.log('source patch to nearest part   prototypes  consistent  no part  top-part freq.');
const line = (label: string, sel: typeof rows) =>
  console.log(
    `${label.padEnd(30)} ${String(sel.length).padStart(10)}  ${pct(sel.filter((r) => r.parts.consistent).length / sel.length)}    ${pct(mean(sel.map((r) => r.parts.noPart)))}  ${pct(mean(sel.map((r) => r.parts.topPartFrequency)))}`,
  );
for (const [lo, hi] of GROUPS) {
  const sel = rows.filter((r) => r.d >= lo && r.d < hi);
  if (sel.length) line(hi === Infinity ? `>= ${lo} px` : `${lo}-${hi} px`, sel);
}
line('all', rows);

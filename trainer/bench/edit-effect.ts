/**
 * Benchmark of prototype debugging (issue 16) on a finished run with a bundle:
 *
 *  1. drop every prototype the candidate finder flags as background: accuracy and
 *     explanation metrics (consistency on CUB, part coverage on the synthetic birds) before/after;
 *  2. drop 50 flagged prototypes (background first, then impure, duplicate): wall time;
 *  3. relabel 10 impure prototypes to the class most of their neighbours belong to: wall time;
 *  4. forbid the concept of the border/background prototypes (their source and nearest
 *     training patches): wall time, and the highest similarity any live prototype reaches
 *     on the same prototypes' nearest VALIDATION patches (held out), before/after, against
 *     the parent's weakest best match on any validation image (its lowest per-image best similarity).
 *
 *   node trainer/bench/edit-effect.ts <run dir> [work dir=runs/bench-edit] [--data <dataset>]
 *       [--only background,drop50,relabel,forbid] [--forget-weight λf] [--forget-steps n] (default: the edit's)
 *
 * Each edit writes a new run under the work dir; the parent run is not changed.
 */
import { rm } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { prototypeConcept, type ConceptPatch, type Edit, type EditsFile, type Manifest } from '@protoatlas/shared';
import { readBundle } from '../src/bundle/read-bundle.ts';
import { reviewCandidates, type CandidatePrototype, type ReviewFlag } from '../src/analysis/review-candidates.ts';
import { applyEdits, type EditReport } from '../src/edit/apply-edits.ts';
import { conceptMatch } from '../src/edit/concept-match.ts';
import { patchFeatures, resolvePatches } from '../src/edit/concept-features.ts';
import { loadModel } from '../src/model/model-file.ts';
import { prepareData } from '../src/model/prepare-data.ts';
import { readJson, runPaths } from '../src/core/run-dir.ts';
import { initBackend } from '../src/tf/backend.ts';
import { answerHelp, benchNumber } from '../src/cli/args.ts';
import { DEFAULT_FORGET } from '../src/stages/forget-concepts.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/edit-effect.ts <run dir> [work dir=runs/bench-edit] [--data <dataset>]
         [--only background,drop50,relabel,forbid] [--forget-weight ${DEFAULT_FORGET.forget}]
         [--forget-steps ${DEFAULT_FORGET.steps}]

What prototype edits do to accuracy and explanations, and how long they take (the parent run is not changed).`,
);

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    data: { type: 'string' },
    only: { type: 'string' },
    'forget-weight': { type: 'string' },
    'forget-steps': { type: 'string' },
  },
});
const steps = new Set((values.only ?? 'background,drop50,relabel,forbid').split(','));
// Absent flags stay absent: the edit's defaults apply.
const forgetWeight = benchNumber('forget-weight', values['forget-weight'], { min: 0 });
const forgetSteps = benchNumber('forget-steps', values['forget-steps'], { integer: true, min: 1, max: 100000 });
const forget = {
  ...(forgetWeight !== undefined ? { forget: forgetWeight } : {}),
  ...(forgetSteps !== undefined ? { steps: forgetSteps } : {}),
};
if (!positionals[0]) {
  console.log('usage: node trainer/bench/edit-effect.ts <run dir> [work dir] [--data <dataset>]');
  process.exit(2);
}
const run = resolve(positionals[0]);
const work = resolve(positionals[1] ?? 'runs/bench-edit');
const parent = (await readBundle(runPaths(run).bundle)).manifest;
const summary = await readJson<{ dataset?: { root?: string } }>(runPaths(run).summary);
const data = values.data ? resolve(values.data) : (summary.dataset?.root ?? null);
await rm(work, { recursive: true, force: true });

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`;
// Bundles built before the candidate finder carry no flags: compute them here from the manifest
// and the model's prototype vectors (border, duplicate and impure rules; part rules need part metrics).
const flags = parent.prototypes.some((p) => p.review)
  ? parent.prototypes.map((p) => p.review ?? [])
  : await computeFlags(parent);
const flagged = (kind: string) =>
  parent.prototypes.filter((p, j) => !p.pruned && flags[j].some((r) => r.kind === kind)).map((p) => p.id);
const file = (edits: Edit[]): EditsFile => ({
  schema: 'protoatlas-edits',
  version: 1,
  model: { id: parent.model.id, version: parent.model.version },
  edits,
});
const live = parent.prototypes.filter((p) => !p.pruned).length;
console.log(
  `${new Date().toISOString()}: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GB, ` +
    `load average ${load()}`,
);
console.log(
  `run ${run}: ${parent.prototypes.length} prototypes (${live} live), ${parent.classes.length} classes, model ` +
    `${parent.model.version}`,
);
for (const kind of ['background', 'duplicate', 'impure'])
  console.log(`  flagged ${kind.padEnd(10)} ${flagged(kind).length}`);

function show(name: string, r: EditReport): void {
  const b = r.before;
  const a = r.after;
  console.log(
    `\n== ${name}: ${r.counts.drop} drop, ${r.counts.relabel} relabel, ${r.counts.forbid} forbid -> ${r.out}`,
  );
  const steps = Object.entries(r.seconds)
    .filter(([k]) => k !== 'total')
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ');
  const inBundle = r.bundle
    ? Object.entries(r.bundle.seconds)
        .filter(([k]) => k !== 'total')
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(', ')
    : 'none';
  console.log(
    `  wall time          ${r.seconds.total.toFixed(1)} s, CPU ${r.cpuSeconds.toFixed(1)} s (load average ${load()})`,
  );
  console.log(`  steps (s)          ${steps}`);
  console.log(`  bundle steps (s)   ${inBundle}`);
  console.log(
    `  similarities       ${r.similaritiesCached ? 'cached (no feature read)' : 'computed'}; pictures ` +
      `${r.forget ? 'rendered' : 'reused'}`,
  );
  if (r.forget) {
    const f = r.forget.at(-1)!;
    const stepsRun = r.forget.reduce((n, e) => n + e.steps, 0);
    console.log(
      `  fine-tune          λf ${forget.forget ?? DEFAULT_FORGET.forget}, ${stepsRun} steps; means over the last ` +
        `pass: forgetting term ${f.forgetting.toFixed(3)}, cross-entropy ${f.crossEntropy.toFixed(3)}, ` +
        `train top-1 ${pct(f.trainAccuracy)}`,
    );
  }
  console.log(`  val top-1          ${pct(b.val?.top1)} -> ${pct(a.val?.top1)}`);
  console.log(`  test top-1         ${pct(b.test?.top1)} -> ${pct(a.test?.top1)}`);
  console.log(`  consistency        ${pct(b.explanation?.consistency)} -> ${pct(a.explanation?.consistency)}`);
  console.log(`  stability          ${pct(b.explanation?.stability)} -> ${pct(a.explanation?.stability)}`);
  console.log(`  purity             ${pct(b.explanation?.purity)} -> ${pct(a.explanation?.purity)}`);
  console.log(`  part coverage      ${pct(b.explanation?.partCoverage)} -> ${pct(a.explanation?.partCoverage)}`);
  console.log(`  live prototypes    ${b.livePrototypes} -> ${a.livePrototypes}`);
}

const background = flagged('background');
if (background.length && steps.has('background')) {
  const r = await applyEdits({
    run,
    out: join(work, 'drop-background'),
    data,
    edits: file(background.map((prototype) => ({ action: 'drop', prototype, reason: 'flagged as background' }))),
    quiet: true,
  });
  show(`drop all ${background.length} background candidates`, r);
}

const order = [...new Set([...background, ...flagged('impure'), ...flagged('duplicate')])];
const fifty = order.slice(0, Math.min(50, live - parent.classes.length));
if (fifty.length && steps.has('drop50'))
  show(
    `drop ${fifty.length}`,
    await applyEdits({
      run,
      out: join(work, 'drop-50'),
      data,
      edits: file(fifty.map((prototype) => ({ action: 'drop', prototype, reason: 'benchmark' }))),
      quiet: true,
    }),
  );

const relabels = flagged('impure')
  .map((id) => {
    const p = parent.prototypes[id];
    const counts = new Map<number, number>();
    for (const n of p.nearest.train)
      if (n.classId !== p.classId) counts.set(n.classId, (counts.get(n.classId) ?? 0) + 1);
    const [classId] = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0] ?? [-1];
    return { id, classId };
  })
  .filter((r) => r.classId >= 0)
  .slice(0, 10);
if (relabels.length && steps.has('relabel')) {
  show(
    `relabel ${relabels.length}`,
    await applyEdits({
      run,
      out: join(work, 'relabel-10'),
      data,
      edits: file(relabels.map((r) => ({ action: 'relabel', prototype: r.id, classId: r.classId }))),
      quiet: true,
    }),
  );
}

// Forbid: the concept of the background/border prototypes, judged on their nearest validation patches.
const borderish = parent.prototypes
  .filter((p, j) => !p.pruned && flags[j].some((r) => r.kind === 'background' && r.reason.includes('border')))
  .map((p) => p.id);
const forbidFrom = (borderish.length ? borderish : background).slice(0, 10);
if (forbidFrom.length && steps.has('forbid')) {
  const edits: Edit[] = forbidFrom.map((id) => ({
    action: 'forbid',
    concept: `background of prototype ${id}`,
    patches: prototypeConcept(parent.prototypes[id]),
    fromPrototype: id,
  }));
  const heldOut: ConceptPatch[] = forbidFrom.flatMap((id) =>
    parent.prototypes[id].nearest.val.map((n) => ({ imageId: n.imageId, row: n.patch.row, col: n.patch.col })),
  );
  const r = await applyEdits({ run, out: join(work, 'forbid'), data, edits: file(edits), forget, quiet: true });
  show(
    `forbid the concept of ${forbidFrom.length} background prototype(s) ` +
      `(${edits.reduce((a, e) => a + (e.action === 'forbid' ? e.patches.length : 0), 0)} patches)`,
    r,
  );
  if (heldOut.length) await heldOutMatch(parent, r.out, heldOut);
}

async function heldOutMatch(m: Manifest, child: string, patches: ConceptPatch[]): Promise<void> {
  const before = await loadModel(run);
  const after = await loadModel(child);
  await initBackend(before.config.backend, { quiet: true });
  const prepared = await prepareData({ ...before.config, data: { ...before.config.data, flip: false } }, data, {
    quiet: true,
    splits: ['val'],
    backboneWeights: before.backboneWeights,
  });
  const splits = [{ name: 'val', items: prepared.itemsBySplit.val, source: prepared.sources.val! }];
  const features = patchFeatures(resolvePatches(patches, splits, 'held-out patches'), splits);
  const removedBefore = m.prototypes.map((p) => p.pruned);
  const removedAfter = new Array<boolean>(m.prototypes.length).fill(false);
  for (const p of after.json.pruned) removedAfter[p.prototype] = true;
  const b = await conceptMatch(before.head, removedBefore, features, prepared.sources.val!);
  const a = await conceptMatch(after.head, removedAfter, features, prepared.sources.val!);
  const threshold = b.weakest;
  const stats = (xs: number[]) =>
    `mean ${(xs.reduce((s, x) => s + x, 0) / xs.length).toFixed(3)}, max ${Math.max(...xs).toFixed(3)}, below ` +
    `threshold ${xs.filter((x) => x < threshold).length}/${xs.length}`;
  console.log(`  held-out concept patches (nearest validation patches of the forbidden prototypes): ${patches.length}`);
  console.log(
    `  threshold: the parent's weakest best match on any validation image = ${threshold.toFixed(3)} (median over ` +
      `images ${b.typical.toFixed(3)}; after the edit ${a.weakest.toFixed(3)} and ${a.typical.toFixed(3)})`,
  );
  console.log(`  max similarity to any live prototype, before: ${stats(b.perPatch)}`);
  console.log(`  max similarity to any live prototype, after:  ${stats(a.perPatch)}`);
  await prepared.frozenBackbone?.dispose();
}

async function computeFlags(m: Manifest): Promise<ReviewFlag[][]> {
  await initBackend('wasm', { quiet: true });
  const { head } = await loadModel(run);
  const protos: CandidatePrototype[] = m.prototypes.map((p) => ({
    classId: p.classId,
    pruned: p.pruned,
    purity: p.purity,
    source: p.source ? { imageId: p.source.imageId, ...p.source.patch } : null,
    nearest: p.nearest.train.map((n) => ({ imageId: n.imageId, classId: n.classId, ...n.patch })),
    noPart: p.parts?.noPart ?? null,
  }));
  const vectors = head.prototypes.dataSync() as Float32Array;
  return reviewCandidates(
    protos,
    vectors,
    head.prototypeDim,
    m.featureGrid,
    m.classes.map((c) => c.name),
  );
}

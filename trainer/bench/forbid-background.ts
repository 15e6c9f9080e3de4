/**
 * Forbidding the background, found from CUB's part annotations (ProtoPDebug with the annotations as the
 * user): a forbid edit whose concept is `--patches` drawn from, for every training image of the run, up to
 * `--per-image` patches whose centre lies farther than `--radius` input pixels (along x or y) from every visible
 * annotated part, drawn at random (seed 0). The edit is applied to the run (fine-tune of add-on and
 * prototypes with the forgetting term, re-push never onto those patches, last layer refit, bundle), and
 * the parent's and the edited model's accuracy and explanation metrics are printed side by side.
 *
 *   node_modules/.bin/node trainer/bench/forbid-background.ts <run dir> <out dir> [--data <CUB dir>]
 *       [--radius 36] [--per-image 1] [--patches 600] [--forget-weight λf] [--forget-steps n]
 *
 * The training items come from the dataset as the run split it, and the patch grid from the run's bundle, so
 * a fine-tuned run works as a frozen one does (its edit runs the tuned backbone over the images).
 *
 * With `--keep-patches n`, the parts themselves are kept as a second concept (ProtoPDebug's remembering term):
 * n patches, at most one per image, whose centre lies within `--keep-radius` pixels of a visible part, each
 * to be matched by some prototype of its image's class. They are drawn after the forbidden ones, which stay the same.
 */
import { parseArgs } from 'node:util';
import type { ConceptPatch } from '@protoatlas/shared';
import { answerHelp, benchNumber } from '../src/cli/args.ts';
import { Rng } from '../src/core/rng.ts';
import { applyEdits } from '../src/edit/apply-edits.ts';
import { DEFAULT_FORGET } from '../src/stages/forget-concepts.ts';
import { loadPartCandidates } from '../src/stages/part-candidates.ts';
import { openRunToEdit, printEditReport, writeEditsFile } from './edit-bench.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/forbid-background.ts <run dir> <out dir> [--data <CUB dir>]
         [--radius 36] [--per-image 1] [--patches 600] [--forget-weight ${DEFAULT_FORGET.forget}] [--forget-steps ${DEFAULT_FORGET.steps}]
         [--keep-patches 0] [--keep-radius 8] [--remember-weight ${DEFAULT_FORGET.remember}]

Forbids, as one concept, patches of the training images that lie away from every annotated CUB part, and prints
accuracy and explanation metrics before and after the edit; --keep-patches also keeps patches on the parts.`,
);

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    data: { type: 'string' },
    radius: { type: 'string', default: '36' },
    'per-image': { type: 'string', default: '1' },
    patches: { type: 'string', default: '600' },
    'forget-weight': { type: 'string' },
    'forget-steps': { type: 'string' },
    'keep-patches': { type: 'string', default: '0' },
    'keep-radius': { type: 'string', default: '8' },
    'remember-weight': { type: 'string' },
  },
});
if (positionals.length !== 2) {
  console.error(
    'usage: forbid-background.ts <run dir> <out dir> [--data <CUB dir>] [--radius 36] [--per-image 1] [--patches 600]',
  );
  process.exit(2);
}
const radius = benchNumber('radius', values.radius, { min: 0 })!;
const perImage = benchNumber('per-image', values['per-image'], { integer: true, min: 1 })!;
const maxPatches = benchNumber('patches', values.patches, { integer: true, min: 1 })!;
const forgetWeight = benchNumber('forget-weight', values['forget-weight'], { min: 0 });
const forgetSteps = benchNumber('forget-steps', values['forget-steps'], { integer: true, min: 1, max: 100000 });
const keepPatches = benchNumber('keep-patches', values['keep-patches'], { integer: true, min: 0 })!;
const keepRadius = benchNumber('keep-radius', values['keep-radius'], { min: 0 })!;
const rememberWeight = benchNumber('remember-weight', values['remember-weight'], { min: 0 });

const opened = await openRunToEdit(positionals[0], positionals[1], values.data);
if (!opened) process.exit(0);
const { run, out, data, splits, parent } = opened;
const items = splits.train;
const { height, width } = parent.featureGrid;
// The off-part patches push.partRadius would exclude; an item whose every patch is excluded has no visible part.
const geometry = { height, width, inputSize: parent.preprocessing.size };
const { exclude } = await loadPartCandidates(data, items, { ...geometry, radius });
const rng = new Rng(0);
const cellsOf = (i: number, cells: Iterable<number>): ConceptPatch[] =>
  [...cells].map((p) => ({ imageId: items[i].id, row: Math.floor(p / width), col: p % width }));
const patches: ConceptPatch[] = [];
exclude.forEach((far, i) => {
  if (far.size === height * width) return;
  patches.push(...rng.shuffle(cellsOf(i, far)).slice(0, perImage));
});
// Every step of the forgetting term visits every forbidden patch against every prototype: a sample keeps it affordable.
const drawn = rng.shuffle(patches).slice(0, maxPatches);
console.log(
  `${drawn.length} background patches (farther than ${radius} px from every part; at most ${perImage} per image, ` +
    `${maxPatches} in all) from ${items.length} training images`,
);
const kept: ConceptPatch[] = [];
if (keepPatches > 0) {
  // The cells within keepRadius of a part are the ones that radius does not exclude.
  const near = (await loadPartCandidates(data, items, { ...geometry, radius: keepRadius })).exclude;
  const onPart: ConceptPatch[] = [];
  items.forEach((_, i) => {
    const far = near.get(i) ?? new Set<number>();
    if (far.size === height * width) return;
    const cells = Array.from({ length: height * width }, (_, p) => p).filter((p) => !far.has(p));
    onPart.push(...rng.shuffle(cellsOf(i, cells)).slice(0, 1));
  });
  kept.push(...rng.shuffle(onPart).slice(0, keepPatches));
  console.log(`${kept.length} part patches kept (within ${keepRadius} px of a part; at most 1 per image)`);
}
const editsPath = await writeEditsFile(out, parent, [
  { action: 'forbid', concept: 'background (away from every annotated part)', patches: drawn },
  ...(kept.length ? [{ action: 'keep' as const, concept: 'parts (on an annotated part)', patches: kept }] : []),
]);
const report = await applyEdits({
  run,
  edits: editsPath,
  out,
  data,
  forget: {
    ...(forgetWeight !== undefined ? { forget: forgetWeight } : {}),
    ...(forgetSteps !== undefined ? { steps: forgetSteps } : {}),
    ...(rememberWeight !== undefined ? { remember: rememberWeight } : {}),
  },
});
printEditReport(report, editsPath);

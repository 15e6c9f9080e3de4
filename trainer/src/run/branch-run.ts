/**
 * Branching: a new run that starts from the state another run reached after one of its phases and
 * continues with its own settings for the phases after that one (another push-tune or stage 3
 * without training the warm-up again). Whatever shaped the phases up to the branch point must be the
 * source run's own setting, so the new run's config.json describes every phase it holds.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseConfig, type TrainConfig } from '../config/config.ts';
import { configLeaves } from '../config/config-leaves.ts';
import { exists, readJson, runPaths, writeJson, writeMetrics } from '../core/run-dir.ts';
import { sha256File } from '../core/sha256.ts';
import { FINISHED, loadCheckpoint } from './checkpoint.ts';
import type { TrainingPhase } from './training-phase.ts';

export interface BranchPoint {
  /** The run directory to branch from. */
  fromDir: string;
  /** The phase after which the new run takes over (its checkpoints/<phase>.ckpt). */
  after: string;
}

/** What a branched run records in branch.json. */
export interface BranchRecord {
  from: string;
  after: string;
  /** sha256 of the source's checkpoints/<after>.ckpt when the branch was made. */
  checkpointSha256: string;
  /** Config fields that differ from the source run's (all read by phases after the branch point). */
  changed: string[];
}

/** Config sections each phase reads; the others (seed, data, backbone, head, ...) shape every phase. */
const PHASE_SECTIONS: Readonly<Record<string, readonly string[]>> = {
  warmup: ['warmup', 'loss'],
  joint: ['joint', 'loss'],
  push: ['push'],
  pushTune: ['pushTune', 'loss'],
  lastLayer: ['lastLayer'],
  prune: ['prune'],
};

/**
 * Fields of a shared section that only some of its phases read: the part localisation term acts in
 * push-tune, and in the joint stage too when the run being branched had loss.partLocalisationJoint.
 */
export function fieldPhases(source: TrainConfig): Readonly<Record<string, readonly string[]>> {
  const localising = source.loss.partLocalisationJoint ? ['joint', 'pushTune'] : ['pushTune'];
  return {
    'loss.partLocalisation': localising,
    'loss.partLocalisationRadius': localising,
    'loss.partLocalisationMargin': localising,
    'loss.partLocalisationJoint': ['joint'],
  };
}

/** Sections that say where or how a run executes, never what it trains. */
const EXECUTION_SECTIONS = new Set([
  'preset',
  'backend',
  'bundle',
  'featureCacheDir',
  'trainThreads',
  'checkpointMinutes',
]);

/** Dotted paths of the leaves in which two configs differ (arrays compare whole), sorted. */
export function configDifferences(a: unknown, b: unknown): string[] {
  const [la, lb] = [new Map(configLeaves(a)), new Map(configLeaves(b))];
  const paths = [...new Set([...la.keys(), ...lb.keys()])].sort();
  return paths.filter((p) => JSON.stringify(la.get(p)) !== JSON.stringify(lb.get(p)));
}

/**
 * The differences a branch after `after` may not have: fields read by that phase or an earlier one, or by
 * the model and data themselves.
 */
export function forbiddenChanges(
  changed: string[],
  schedule: TrainingPhase[],
  after: string,
  readersOf: Readonly<Record<string, readonly string[]>> = {},
): string[] {
  const point = schedule.findIndex((p) => p.name === after);
  const later = new Set(schedule.slice(point + 1).flatMap((p) => PHASE_SECTIONS[p.name] ?? []));
  const earlier = new Set(schedule.slice(0, point + 1).flatMap((p) => PHASE_SECTIONS[p.name] ?? []));
  const before = new Set(schedule.slice(0, point + 1).map((p) => p.name));
  return changed.filter((path) => {
    const readers = readersOf[path];
    if (readers) return readers.some((name) => before.has(name));
    const section = path.split('.')[0];
    if (EXECUTION_SECTIONS.has(section)) return false;
    return earlier.has(section) || !later.has(section);
  });
}

/**
 * Writes the new run directory's config.json, checkpoints (the source's up to `after`; last.ckpt = the
 * state after it) and branch.json, so that training continues it as a resume.
 */
export async function startBranch(
  branch: BranchPoint,
  config: TrainConfig,
  outDir: string,
  schedule: TrainingPhase[],
): Promise<BranchRecord> {
  const names = schedule.map((p) => p.name);
  const point = names.indexOf(branch.after);
  if (point < 0) throw new Error(`--after ${branch.after}: not a phase of the training schedule (${names.join(', ')})`);
  const source = runPaths(resolve(branch.fromDir));
  if (!(await exists(source.config))) {
    throw new Error(`${source.config} not found: --from must name a run directory written by npm run train`);
  }
  const stageCheckpoint = source.stageCheckpoint(branch.after);
  if (!(await exists(stageCheckpoint))) {
    throw new Error(
      `${stageCheckpoint} not found: the run in ${branch.fromDir} has not finished phase "${branch.after}" ` +
        '(resume it first, or branch after an earlier phase)',
    );
  }
  const sourceConfig = parseConfig(await readJson<unknown>(source.config), source.config);
  const changed = configDifferences(sourceConfig, config);
  const forbidden = forbiddenChanges(changed, schedule, branch.after, fieldPhases(sourceConfig));
  if (forbidden.length) {
    throw new Error(
      `cannot branch from ${branch.fromDir} after "${branch.after}": ${forbidden.join(', ')} ` +
        `differ from that run's config.json, and the phases up to "${branch.after}" (or the model itself) ` +
        'depend on them; set them as that run did, or train anew',
    );
  }
  const { meta } = await loadCheckpoint(stageCheckpoint);
  const next = names[point + 1] ?? FINISHED;
  if (meta.stage !== next) {
    throw new Error(
      `${stageCheckpoint}: holds a run about to start "${meta.stage}", not "${next}"; ` +
        'it was not written at the end of that phase by this schedule',
    );
  }
  const paths = runPaths(outDir);
  await mkdir(paths.checkpoints, { recursive: true });
  for (const name of names.slice(0, point + 1)) {
    const from = source.stageCheckpoint(name);
    if (await exists(from)) await copyFile(from, paths.stageCheckpoint(name));
  }
  await copyFile(stageCheckpoint, paths.lastCheckpoint);
  await writeMetrics(paths.metrics, meta.history);
  await writeJson(paths.config, config);
  const record: BranchRecord = {
    from: source.dir,
    after: branch.after,
    checkpointSha256: await sha256File(stageCheckpoint),
    changed,
  };
  await writeJson(`${paths.dir}/branch.json`, record);
  return record;
}

/**
 * `train`: opens (or resumes) a run directory, runs the training schedule, then writes the
 * model, the summary and the bundle. What each phase does lives in phases/; their order in
 * training-schedule.ts.
 */
import { mkdir } from 'node:fs/promises';
import { buildBundle } from '../bundle/build-bundle.ts';
import { bundleIsCurrent } from '../bundle/bundle-status.ts';
import { formatBundleReport } from '../bundle/format-report.ts';
import { ProtoHead } from '../head/proto-head.ts';
import { initPrototypesFromPatches } from '../stages/init-prototypes.ts';
import {
  BASELINE_TRAINING,
  linearLogits,
  pooledFeatures,
  trainLinear,
  type LinearModel,
} from '../stages/linear-probe.ts';
import type { GradPool } from '../stages/grad-pool.ts';
import { teacherTargets } from '../stages/teacher.ts';
import { accuracy } from '../stages/predict.ts';
import { initBackend } from '../tf/backend.ts';
import { FINISHED, loadCheckpoint, type CheckpointMeta } from './checkpoint.ts';
import { parseConfig, type TrainConfig } from '../config/config.ts';
import { saveModel } from '../model/model-file.ts';
import { prepareData, type PreparedData } from '../model/prepare-data.ts';
import { Rng } from '../core/rng.ts';
import { exists, readJson, runPaths, writeJson } from '../core/run-dir.ts';
import { startBranch, type BranchPoint } from './branch-run.ts';
import { resumeIndex, runSchedule } from './run-schedule.ts';
import { buildSummary, printSummary, type TrainSummary } from './run-summary.ts';
import { TrainContext } from './train-context.ts';
import type { RunControl } from './run-state.ts';
import type { TrainingPhase } from './training-phase.ts';
import { trainingSchedule } from './training-schedule.ts';

export type { TrainSummary } from './run-summary.ts';

export interface TrainOptions extends RunControl {
  config: TrainConfig;
  dataDir: string | null;
  outDir: string;
  resume: boolean;
  /** Start from the state another run reached after one of its phases (a new run; not with `resume`). */
  branch?: BranchPoint;
  /** Do not build the bundle at the end (tests; `npm run bundle` builds it later). */
  skipBundle?: boolean;
  /** The phases to run (default: trainingSchedule of the run's config); tests add phases this way. */
  schedule?: (config: TrainConfig) => TrainingPhase[];
}

/** Runs (or resumes) the training schedule and writes the run directory. */
export async function trainRun(opts: TrainOptions): Promise<TrainSummary> {
  const opened: { ctx: TrainContext | null } = { ctx: null };
  try {
    return await train(opts, opened);
  } finally {
    await opened.ctx?.closeThreads();
  }
}

async function train(opts: TrainOptions, opened: { ctx: TrainContext | null }): Promise<TrainSummary> {
  const log = (msg: string) => {
    if (!opts.quiet) process.stderr.write(`${msg}\n`);
  };
  const paths = runPaths(opts.outDir);
  const hasCheckpoint = await exists(paths.lastCheckpoint);
  if (hasCheckpoint && !opts.resume) {
    throw new Error(
      `${opts.outDir} already holds a run (${paths.lastCheckpoint}); ` +
        'pass --resume to continue it, or choose another --out',
    );
  }
  if (opts.resume && !hasCheckpoint) log(`no checkpoint in ${opts.outDir}: starting a new run`);
  let config = opts.config;
  if (opts.branch) {
    if (opts.resume)
      throw new Error('--from starts a new run from another run; --resume continues one: pass one of them');
    const branch = await startBranch(opts.branch, config, opts.outDir, (opts.schedule ?? trainingSchedule)(config));
    const changed = branch.changed.length ? `changed: ${branch.changed.join(', ')}` : 'same config';
    log(`branching from ${branch.from} after ${branch.after} (${changed})`);
  }
  const resuming = (opts.resume && hasCheckpoint) || opts.branch !== undefined;
  if (resuming) {
    // The run's own resolved config wins, so a resume cannot silently change the recipe.
    // Parsed, so runs from older versions gain the defaults of newer fields (e.g. prune, bundle).
    config = parseConfig(await readJson<unknown>(paths.config), paths.config);
    log(`resuming ${opts.outDir} (preset ${config.preset})`);
  }
  await mkdir(paths.checkpoints, { recursive: true });
  await writeJson(paths.config, config);
  const schedule = (opts.schedule ?? trainingSchedule)(config);
  // Read before the data is prepared, so a checkpoint this schedule cannot continue is refused at once.
  const checkpoint = resuming ? await loadCheckpoint(paths.lastCheckpoint) : null;
  if (checkpoint) {
    // A run finished before pruning existed goes through the prune phase on resume.
    if (checkpoint.meta.stage === FINISHED && checkpoint.meta.pruning === undefined) checkpoint.meta.stage = 'prune';
    resumeIndex(schedule, checkpoint.meta.stage, paths.lastCheckpoint);
  }

  const backend = await initBackend(config.backend, { quiet: opts.quiet });
  const t0 = Date.now();
  const data = await prepareData(config, opts.dataDir, {
    quiet: opts.quiet,
    runDir: opts.outDir,
    splits: ['train', 'val', 'test'],
  });
  const featureSeconds = (Date.now() - t0) / 1000;

  const rng = new Rng(config.seed);
  const head = newRunHead(config, data, rng);
  const meta: CheckpointMeta = {
    version: 1,
    stage: schedule[0]?.name ?? FINISHED,
    epoch: 0,
    rngState: 0,
    optimizerSteps: 0,
    history: [],
    push: null,
    stageResults: {},
    seconds: { features: featureSeconds },
  };
  const ctx = new TrainContext({
    config,
    data,
    head,
    rng,
    outDir: opts.outDir,
    control: opts,
    meta,
    backendName: backend.name,
  });
  opened.ctx = ctx;

  if (checkpoint) {
    const resumed = checkpoint.meta;
    resumed.seconds.features = (resumed.seconds.features ?? 0) + featureSeconds;
    ctx.resumeFrom(resumed, checkpoint.tensors);
    ctx.meta.baseline = ctx.meta.baseline ?? null;
  } else {
    await initialHead(ctx);
  }

  if ((await runSchedule(ctx, schedule)) === 'stopped') {
    log(`stopped after ${ctx.epochsThisProcess} epochs as requested; continue with --resume`);
    return await buildSummary(ctx, backend.description, false);
  }

  await saveModel(paths.model, {
    config,
    classes: data.dataset.classes,
    head,
    backbone: data.trainableBackbone,
    push: ctx.meta.push,
    trainItems: data.itemsBySplit.train,
    pruning: ctx.meta.pruning ?? null,
  });
  const summary = await buildSummary(ctx, backend.description, true);
  await writeJson(paths.summary, summary);
  printSummary(summary, schedule, opts.quiet);
  await ctx.releaseFeatures();
  if (config.bundle.enabled && !opts.skipBundle) {
    if (await bundleIsCurrent(opts.outDir)) {
      log(`bundle ${paths.bundle} is up to date`);
    } else {
      log(`building the model bundle in ${paths.bundle}`);
      const report = await buildBundle({ run: opts.outDir, data: data.dataset.root, quiet: opts.quiet });
      log(formatBundleReport(report));
    }
  }
  return summary;
}

/**
 * A new run's head before the schedule: on frozen features the paper's baseline (GAP + linear),
 * whose probe also picks the initial patches, then the prototypes' initial values ('init' row).
 */
async function initialHead(ctx: TrainContext): Promise<void> {
  const { data, config, head, rng, meta } = ctx;
  const quiet = ctx.control.quiet;
  const t0 = Date.now();
  let probe: LinearModel | null = null;
  let baseline: { top1: number; top5: number } | null = null;
  if (!data.trainableBackbone) {
    // The paper's "Baseline" on the same frozen features; also the probe that picks initial patches.
    const pool = await ctx.readThreads();
    const trained = await trainBaselineProbe(data, config, rng, { quiet, pool });
    probe = trained.probe;
    baseline = await evalLinear(probe, data, pool);
    ctx.log(`baseline (GAP + linear) val top-1 ${(100 * baseline.top1).toFixed(1)}%`);
    if (config.loss.distillation > 0) {
      const mirrored = config.data.flip && ctx.train.canFlip;
      const T = config.loss.distillationTemperature;
      ctx.setTeacher(teacherTargets(probe, trained.pooled, ctx.train.n, mirrored, T));
    }
  }
  if (config.head.prototypeInit === 'patches')
    meta.initPatches = initPrototypesFromPatches(head, ctx.train, probe, { rng, quiet });
  if (config.head.prototypeSphere) head.normalizePrototypes();
  const init = await ctx.evalVal();
  meta.stageResults.init = { top1: init?.top1 ?? NaN, top5: init?.top5 ?? NaN, seconds: (Date.now() - t0) / 1000 };
  meta.seconds.init = (Date.now() - t0) / 1000;
  meta.baseline = baseline;
}

/**
 * A new run's head, drawn from the run's random stream before anything else is (the baseline that
 * follows depends on that order; trainer/bench/compare-runs.ts replays it).
 */
export function newRunHead(config: TrainConfig, data: PreparedData, rng: Rng): ProtoHead {
  return new ProtoHead(
    {
      inputChannels: data.featureShape[2],
      addOn: config.head.addOn as ProtoHead['spec']['addOn'],
      numClasses: data.dataset.classes.length,
      prototypesPerClass: config.head.prototypesPerClass,
      incorrectClassWeight: config.head.incorrectClassWeight,
      similarityEpsilon: config.head.similarityEpsilon,
      similarityTopK: config.head.similarityTopK,
    },
    rng,
  );
}

/** The paper's "Baseline" on the training views (originals and, with flips, mirrored copies), and their pooled features. */
export async function trainBaselineProbe(
  data: PreparedData,
  config: TrainConfig,
  rng: Rng,
  opts: { quiet?: boolean; pool?: GradPool | null } = {},
): Promise<{ probe: LinearModel; pooled: Awaited<ReturnType<typeof pooledFeatures>> }> {
  const { quiet, pool } = opts;
  const pooled = await pooledFeatures(data.sources.train!, {
    flip: config.data.flip,
    quiet,
    label: 'baseline pooling',
    pool,
  });
  return { probe: trainLinear(pooled, data.dataset.classes.length, { ...BASELINE_TRAINING, rng, quiet }), pooled };
}

async function evalLinear(
  model: LinearModel,
  data: PreparedData,
  pool: GradPool | null,
): Promise<{ top1: number; top5: number }> {
  const val = data.sources.val!;
  if (!val.n) return { top1: NaN, top5: NaN };
  const pooled = await pooledFeatures(val, { flip: false, quiet: true, pool });
  const logits = linearLogits(model, pooled.x, pooled.n);
  const acc = accuracy({ n: pooled.n, numClasses: model.numClasses, logits, labels: pooled.labels });
  return { top1: acc.top1, top5: acc.top5 };
}

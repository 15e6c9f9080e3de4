import { copyFile, mkdir } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { ProtoHead } from '../head/proto-head.ts';
import { pickTensors, type HostTensors } from '../core/host-tensors.ts';
import { Adam } from '../optim/adam.ts';
import { initPrototypesFromPatches } from '../stages/init-prototypes.ts';
import {
  computeSimilarities,
  lastLayerOptimizer,
  lastLayerSparsity,
  recenterRows,
  similarityAccuracy,
  trainLastLayerEpoch,
  wrongClassMaskTensor,
} from '../stages/last-layer.ts';
import {
  BASELINE_TRAINING,
  linearLogits,
  pooledFeatures,
  trainLinear,
  type LinearModel,
} from '../stages/linear-probe.ts';
import { accuracy, predict, type Accuracy } from '../stages/predict.ts';
import {
  phaseGroups,
  setPhaseLearningRates,
  trainEpochSteps,
  type EpochProgress,
  type MidEpochCheckpoint,
  type PrototypePhaseName,
} from '../stages/prototype-phase.ts';
import { runPruneStage } from '../stages/prune-stage.ts';
import { pushPrototypes, sourcePatchFeatures } from '../stages/push.ts';
import { initBackend } from '../tf/backend.ts';
import type { TrainableBackbone } from '../backbone/types.ts';
import { startGradPoolFor, type GradPool } from '../stages/grad-pool.ts';
import { snapshotFeatures } from '../stages/feature-snapshot.ts';
import { cachedSource } from '../stages/sources.ts';
import type { SplitName } from '../data/types.ts';
import { storeRunSimilarities } from '../stages/similarity-cache.ts';
import { buildBundle } from '../bundle/build-bundle.ts';
import { bundleIsCurrent } from '../bundle/bundle-status.ts';
import { formatBundleReport } from '../bundle/format-report.ts';
import { loadCheckpoint, saveCheckpoint, STAGES, type CheckpointMeta, type Stage } from './checkpoint.ts';
import { parseConfig, type PhaseConfig, type TrainConfig } from '../config/config.ts';
import { prepareData, type PreparedData } from '../model/prepare-data.ts';
import { saveModel } from '../model/model-file.ts';
import { Rng } from '../core/rng.ts';
import { exists, readJson, runPaths, writeJson, writeMetrics } from '../core/run-dir.ts';

export interface TrainOptions {
  config: TrainConfig;
  dataDir: string | null;
  outDir: string;
  resume: boolean;
  quiet?: boolean;
  /** Stop after this many epochs in total (tests of resume); the run is left resumable. */
  stopAfterEpochs?: number;
  /** Stop inside an epoch after this many stage-1 batches in this process (tests of mid-epoch resume). */
  stopAfterBatches?: number;
  /** Do not build the bundle at the end (tests; `npm run bundle` builds it later). */
  skipBundle?: boolean;
}

export interface TrainSummary {
  preset: string;
  backend: string;
  dataset: {
    layout: string;
    root: string;
    classes: number;
    train: number;
    val: number;
    test: number;
    skippedFiles: number;
    skipped: { path: string; reason: string }[];
  };
  baseline: { top1: number; top5: number } | null;
  stages: CheckpointMeta['stageResults'];
  /** Test is reported only; nothing is selected on it. */
  final: { val: Accuracy | null; test: Accuracy | null };
  lastLayerWrongClassNearZero: number | null;
  /** Share of wrong-class weights exactly 0 (stage 3's L1 with the proximal solver). */
  lastLayerWrongClassZero: number | null;
  pruning: { applied: boolean; candidates: number; note: string } | null;
  seconds: Record<string, number>;
  prototypes: number;
  finished: boolean;
}

const log = (quiet: boolean | undefined, msg: string) => {
  if (!quiet) process.stderr.write(`${msg}\n`);
};

function stageIndex(s: Stage): number {
  return STAGES.indexOf(s);
}

/** Runs (or resumes) the three ProtoPNet stages and writes the run directory. */
export async function trainRun(opts: TrainOptions): Promise<TrainSummary> {
  const threads: GradThreads = { pool: null };
  try {
    return await runStages(opts, threads);
  } finally {
    await threads.pool?.close();
  }
}

/** Gradient worker threads, started on the first epoch that trains a backbone and closed when the run ends. */
interface GradThreads {
  pool: GradPool | null;
}

async function runStages(opts: TrainOptions, threads: GradThreads): Promise<TrainSummary> {
  const paths = runPaths(opts.outDir);
  const hasCheckpoint = await exists(paths.lastCheckpoint);
  if (hasCheckpoint && !opts.resume) {
    throw new Error(
      `${opts.outDir} already holds a run (${paths.lastCheckpoint}); pass --resume to continue it, or choose another --out`,
    );
  }
  if (opts.resume && !hasCheckpoint) log(opts.quiet, `no checkpoint in ${opts.outDir}: starting a new run`);
  let config = opts.config;
  if (opts.resume && hasCheckpoint) {
    // The run's own resolved config wins, so a resume cannot silently change the recipe.
    // Parsed, so runs from older versions gain the defaults of newer fields (e.g. prune, bundle).
    config = parseConfig(await readJson<unknown>(paths.config), paths.config);
    log(opts.quiet, `resuming ${opts.outDir} (preset ${config.preset})`);
  }
  await mkdir(paths.checkpoints, { recursive: true });
  await writeJson(paths.config, config);

  const backend = await initBackend(config.backend, { quiet: opts.quiet });
  const t0 = Date.now();
  const data = await prepareData(config, opts.dataDir, {
    quiet: opts.quiet,
    runDir: opts.outDir,
    splits: ['train', 'val', 'test'],
  });
  const featureSeconds = (Date.now() - t0) / 1000;

  const rng = new Rng(config.seed);
  const head = new ProtoHead(
    {
      inputChannels: data.featureShape[2],
      addOn: config.head.addOn as ProtoHead['spec']['addOn'],
      numClasses: data.dataset.classes.length,
      prototypesPerClass: config.head.prototypesPerClass,
      incorrectClassWeight: config.head.incorrectClassWeight,
    },
    rng,
  );
  let train = data.sources.train!;
  let val = data.sources.val!;
  let threadsResolved = false;
  /** The gradient threads, started on first use; null: this thread alone. */
  const gradPool = async (): Promise<GradPool | null> => {
    if (!data.trainableBackbone && !train.sharedFeatures) return null;
    if (!threadsResolved) {
      threadsResolved = true;
      const started = await startGradPoolFor(data, { threads: config.trainThreads, backend: backend.name, head });
      log(opts.quiet, `gradient threads: ${started.threads} (${started.why})`);
      threads.pool = started.pool;
    }
    return threads.pool;
  };
  const gradThreads = async (
    phase: PhaseConfig,
  ): Promise<{ pool: GradPool; backbone: TrainableBackbone | null } | null> => {
    const backbone = data.trainableBackbone;
    // Threads take whole micro-batches (of images, or of cached features for a frozen backbone);
    // a phase without them, or on the feature snapshot (push-tune), runs on this thread.
    if (!phase.microBatch || !(backbone ? train.shared : train.sharedFeatures)) return null;
    const pool = await gradPool();
    return pool ? { pool, backbone } : null;
  };
  /** After the joint stage the backbone is fixed: its features are computed once for every later stage. */
  const snapshotAfterJoint = async (): Promise<void> => {
    const backbone = data.trainableBackbone;
    if (!backbone || !train.shared) return;
    const pool = await gradPool();
    await pool?.setBackboneWeights(backbone);
    const t0 = Date.now();
    train = await snapshotFeatures(train, { name: 'train', flip: train.canFlip, pool, quiet: opts.quiet });
    if (val.n) val = await snapshotFeatures(val, { name: 'val', flip: false, pool, quiet: opts.quiet });
    meta.seconds.snapshot = (meta.seconds.snapshot ?? 0) + (Date.now() - t0) / 1000;
  };
  const evalVal = (): Accuracy | null => (val.n ? accuracy(predict(head, val)) : null);

  let meta: CheckpointMeta = {
    version: 1,
    stage: STAGES[0],
    epoch: 0,
    rngState: 0,
    optimizerSteps: 0,
    history: [],
    push: null,
    stageResults: {},
    seconds: { features: featureSeconds },
  };
  let resumedTensors: HostTensors | null = null;
  let baseline: { top1: number; top5: number } | null = null;

  if (opts.resume && hasCheckpoint) {
    const ck = await loadCheckpoint(paths.lastCheckpoint);
    meta = ck.meta;
    meta.seconds.features = (meta.seconds.features ?? 0) + featureSeconds;
    head.setWeights(pickTensors(ck.tensors, 'head.'));
    if (data.trainableBackbone) data.trainableBackbone.setWeights(pickTensors(ck.tensors, 'backbone.', true));
    rng.setState(meta.rngState);
    resumedTensors = ck.tensors;
    // A run finished before pruning existed goes through the prune stage on resume.
    if (meta.stage === 'done' && meta.pruning === undefined) meta.stage = 'prune';
    baseline = meta.baseline ?? null;
  } else {
    const tInit = Date.now();
    let probe: LinearModel | null = null;
    if (!data.trainableBackbone) {
      // The paper's "Baseline" on the same frozen features; also the probe that picks initial patches.
      probe = trainBaseline(data, config, rng, opts.quiet);
      baseline = evalLinear(probe, data);
      log(opts.quiet, `baseline (GAP + linear) val top-1 ${(100 * baseline.top1).toFixed(1)}%`);
    }
    if (config.head.prototypeInit === 'patches')
      initPrototypesFromPatches(head, train, probe, { rng, quiet: opts.quiet });
    const init = evalVal();
    meta.stageResults.init = { top1: init?.top1 ?? NaN, top5: init?.top5 ?? NaN, seconds: (Date.now() - tInit) / 1000 };
    meta.seconds.init = (Date.now() - tInit) / 1000;
  }
  meta.baseline = baseline;

  const backboneTensors = (): HostTensors => {
    const out: HostTensors = new Map();
    if (data.trainableBackbone) for (const [k, v] of data.trainableBackbone.getWeights()) out.set(`backbone.${k}`, v);
    return out;
  };
  let epochsThisProcess = 0;
  let bestWeights: Float32Array | null = null;
  const resumedBest = resumedTensors?.get('best.last_layer')?.data ?? null;
  const save = async (opt: Adam | null) => {
    meta.rngState = rng.getState();
    const tensors: HostTensors = new Map([...head.getWeights(), ...backboneTensors()]);
    if (bestWeights) tensors.set('best.last_layer', { shape: head.lastLayer.shape.slice(), data: bestWeights });
    if (opt) {
      const st = opt.getState();
      meta.optimizerSteps = st.steps;
      for (const [k, v] of st.tensors) tensors.set(k, v);
    }
    await saveCheckpoint(paths.lastCheckpoint, meta, tensors);
    await writeMetrics(paths.metrics, meta.history);
  };
  const stopRequested = () => opts.stopAfterEpochs !== undefined && epochsThisProcess >= opts.stopAfterEpochs;
  let batchesThisProcess = 0;
  const midEpoch = (optimizer: Adam): MidEpochCheckpoint => ({
    everySeconds: config.checkpointMinutes * 60,
    save: async (progress) => {
      meta.epochProgress = progress;
      await save(optimizer);
    },
    stop: () => opts.stopAfterBatches !== undefined && ++batchesThisProcess >= opts.stopAfterBatches,
  });
  /** The progress of the epoch the checkpoint stopped in, once (later epochs start afresh). */
  const takeProgress = (): EpochProgress | null => {
    const p = meta.epochProgress ?? null;
    delete meta.epochProgress;
    return p;
  };

  // Stage 1: warm-up then joint.
  for (const phaseName of ['warmup', 'joint'] as PrototypePhaseName[]) {
    if (stageIndex(meta.stage) > stageIndex(phaseName)) continue;
    const phase = config[phaseName];
    const optimizer = new Adam(phaseGroups(phase, head, data.trainableBackbone));
    if (resumedTensors && (meta.epoch > 0 || meta.epochProgress))
      optimizer.setState({ steps: meta.optimizerSteps, tensors: pickTensors(resumedTensors, 'adam.') });
    resumedTensors = null;
    const tStage = Date.now();
    for (let e = meta.epoch; e < phase.epochs; e++) {
      if (stopRequested()) return partialSummary();
      setPhaseLearningRates(optimizer, phase, e);
      const pool = await gradThreads(phase);
      const resumeFrom = takeProgress();
      const stats = await trainEpochSteps({
        label: `${phaseName} ${e + 1}/${phase.epochs}`,
        phase,
        head,
        source: train,
        loss: config.loss,
        optimizer,
        rng,
        quiet: opts.quiet,
        pool,
        resumeFrom,
        checkpoint: midEpoch(optimizer),
      });
      if (stats === 'stopped') return partialSummary();
      delete meta.epochProgress; // saved inside the epoch just finished
      const v = evalVal();
      meta.history.push({
        stage: phaseName,
        epoch: e + 1,
        ...stats,
        valTop1: v?.top1 ?? null,
        valTop5: v?.top5 ?? null,
      });
      log(
        opts.quiet,
        `${phaseName} epoch ${e + 1}/${phase.epochs}: loss ${stats.loss.toFixed(3)} (ce ${stats.crossEntropy.toFixed(3)} clst ${stats.clusterCost.toFixed(3)} sep ${stats.separationCost.toFixed(3)}) train ${(100 * stats.trainAccuracy).toFixed(1)}% val ${v ? `${(100 * v.top1).toFixed(1)}%` : 'n/a'} [${stats.seconds.toFixed(0)}s]`,
      );
      meta.epoch = e + 1;
      meta.seconds[phaseName] = (meta.seconds[phaseName] ?? 0) + stats.seconds;
      epochsThisProcess++;
      await save(optimizer);
    }
    const v = evalVal();
    meta.stageResults[phaseName] = {
      top1: v?.top1 ?? NaN,
      top5: v?.top5 ?? NaN,
      seconds: meta.seconds[phaseName] ?? (Date.now() - tStage) / 1000,
    };
    meta.stage = STAGES[stageIndex(phaseName) + 1];
    meta.epoch = 0;
    optimizer.dispose();
    await save(null);
    await copyFile(paths.lastCheckpoint, paths.stageCheckpoint(phaseName));
  }

  await snapshotAfterJoint();

  // Stage 2: push.
  if (meta.stage === 'push') {
    const tPush = Date.now();
    if (config.push.enabled) {
      meta.push = pushPrototypes(head, train, { quiet: opts.quiet });
    }
    const v = evalVal();
    meta.seconds.push = (Date.now() - tPush) / 1000;
    meta.stageResults.push = { top1: v?.top1 ?? NaN, top5: v?.top5 ?? NaN, seconds: meta.seconds.push };
    log(
      opts.quiet,
      `push: val top-1 ${v ? `${(100 * v.top1).toFixed(1)}%` : 'n/a'} (mean projection distance ${meanDistance(meta.push)})`,
    );
    meta.stage = 'pushTune';
    meta.epoch = 0;
    await save(null);
    await copyFile(paths.lastCheckpoint, paths.stageCheckpoint('push'));
  }

  // Stage 2b (not in the paper): tune the add-on with prototypes tied to their pushed patches.
  if (meta.stage === 'pushTune') {
    const phase = config.pushTune;
    if (phase.epochs > 0 && meta.push) {
      head.tieToPatches(sourcePatchFeatures(meta.push, train, head.spec.inputChannels));
      // The backbone stays as pushed: tied features were read from it.
      const optimizer = new Adam(phaseGroups(phase, head, null));
      if (resumedTensors && (meta.epoch > 0 || meta.epochProgress))
        optimizer.setState({ steps: meta.optimizerSteps, tensors: pickTensors(resumedTensors, 'adam.') });
      resumedTensors = null;
      for (let e = meta.epoch; e < phase.epochs; e++) {
        if (stopRequested()) return partialSummary();
        setPhaseLearningRates(optimizer, phase, e);
        const pool = await gradThreads(phase);
        const resumeFrom = takeProgress();
        const stats = await trainEpochSteps({
          label: `push-tune ${e + 1}/${phase.epochs}`,
          phase,
          head,
          source: train,
          loss: config.loss,
          optimizer,
          rng,
          quiet: opts.quiet,
          backboneTraining: false,
          pool,
          resumeFrom,
          checkpoint: midEpoch(optimizer),
        });
        if (stats === 'stopped') return partialSummary();
        delete meta.epochProgress;
        head.syncTiedPrototypes();
        const v = evalVal();
        meta.history.push({
          stage: 'pushTune',
          epoch: e + 1,
          ...stats,
          valTop1: v?.top1 ?? null,
          valTop5: v?.top5 ?? null,
        });
        log(
          opts.quiet,
          `push-tune epoch ${e + 1}/${phase.epochs}: loss ${stats.loss.toFixed(3)} train ${(100 * stats.trainAccuracy).toFixed(1)}% val ${v ? `${(100 * v.top1).toFixed(1)}%` : 'n/a'} [${stats.seconds.toFixed(0)}s]`,
        );
        meta.epoch = e + 1;
        meta.seconds.pushTune = (meta.seconds.pushTune ?? 0) + stats.seconds;
        epochsThisProcess++;
        await save(optimizer);
      }
      optimizer.dispose();
      const v = evalVal();
      meta.stageResults.pushTune = { top1: v?.top1 ?? NaN, top5: v?.top5 ?? NaN, seconds: meta.seconds.pushTune ?? 0 };
    }
    meta.stage = 'lastLayer';
    meta.epoch = 0;
    await save(null);
    await copyFile(paths.lastCheckpoint, paths.stageCheckpoint('pushTune'));
  }

  // Stage 3: last layer only, on similarities computed once.
  if (meta.stage === 'lastLayer') {
    const tLast = Date.now();
    const ll = config.lastLayer;
    const mask = wrongClassMaskTensor(head);
    const optimizer = lastLayerOptimizer(head, ll, mask);
    if (resumedTensors && meta.epoch > 0)
      optimizer.setState({ steps: meta.optimizerSteps, tensors: pickTensors(resumedTensors, 'adam.') });
    resumedTensors = null;
    const sims =
      ll.epochs > meta.epoch ? computeSimilarities(head, train, { flip: config.data.flip, quiet: opts.quiet }) : null;
    const valSims = ll.epochs > meta.epoch ? computeSimilarities(head, val, { flip: false, quiet: true }) : null;
    // Kept for edits that leave the embedding alone (drop, relabel: trainer/src/edit/).
    if (sims && valSims) await storeRunSimilarities(head, config, data, { train: sims, val: valSims });
    // Keep the last-layer weights that do best on validation (epoch 0 = as they came out of push):
    // on frozen features this stage can overfit the training similarities.
    const scoreNow = () => (valSims?.n ? similarityAccuracy(head, valSims)!.top1 : NaN);
    if (meta.epoch === 0) {
      // The same classifier with its wrong-class weights at 0 (softmax ignores a per-row shift).
      if (ll.l1Solver === 'proximal') recenterRows(head);
      meta.bestLastLayer = { epoch: 0, top1: scoreNow() };
      bestWeights = head.lastLayer.dataSync().slice() as Float32Array;
    } else if (resumedBest) bestWeights = resumedBest;
    for (let e = meta.epoch; e < ll.epochs; e++) {
      if (stopRequested()) return partialSummary();
      const t = Date.now();
      const stats = trainLastLayerEpoch({
        head,
        data: sims!,
        batchSize: ll.batchSize,
        l1: ll.l1,
        proximal: ll.l1Solver === 'proximal',
        optimizer,
        rng,
      });
      const v = similarityAccuracy(head, valSims!);
      const sparsity = lastLayerSparsity(head);
      const zero = lastLayerSparsity(head, 0);
      meta.history.push({
        stage: 'lastLayer',
        epoch: e + 1,
        ...stats,
        wrongClassNearZero: sparsity,
        wrongClassZero: zero,
        valTop1: v?.top1 ?? null,
        valTop5: v?.top5 ?? null,
        seconds: (Date.now() - t) / 1000,
      });
      const best = meta.bestLastLayer;
      if (ll.selectBest && v && best && v.top1 > best.top1) {
        meta.bestLastLayer = { epoch: e + 1, top1: v.top1 };
        bestWeights = head.lastLayer.dataSync().slice() as Float32Array;
      }
      if (e === ll.epochs - 1 || (e + 1) % 5 === 0) {
        log(
          opts.quiet,
          `last layer epoch ${e + 1}/${ll.epochs}: loss ${stats.loss.toFixed(3)} train ${(100 * stats.trainAccuracy).toFixed(1)}% val ${v ? `${(100 * v.top1).toFixed(1)}%` : 'n/a'} wrong-class weights exactly 0: ${(100 * zero).toFixed(1)}%`,
        );
      }
      meta.epoch = e + 1;
      epochsThisProcess++;
      await save(optimizer);
    }
    if (ll.selectBest && bestWeights) {
      const best = meta.bestLastLayer;
      head.lastLayer.assign(tf.tensor2d(bestWeights, head.lastLayer.shape as [number, number]));
      log(
        opts.quiet,
        `last layer: keeping epoch ${best?.epoch} (best validation top-1 ${(100 * (best?.top1 ?? NaN)).toFixed(1)}%)`,
      );
    }
    const v = evalVal();
    meta.seconds.lastLayer = (meta.seconds.lastLayer ?? 0) + (Date.now() - tLast) / 1000;
    meta.stageResults.lastLayer = { top1: v?.top1 ?? NaN, top5: v?.top5 ?? NaN, seconds: meta.seconds.lastLayer };
    meta.stage = 'prune';
    meta.epoch = 0;
    optimizer.dispose();
    mask.dispose();
    await save(null);
    await copyFile(paths.lastCheckpoint, paths.stageCheckpoint('lastLayer'));
  }

  // Paper Sec. 2.5: prune non-class-specific prototypes, re-optimise the last layer.
  if (meta.stage === 'prune') {
    const result = runPruneStage({
      head,
      train,
      val,
      push: meta.push,
      config,
      classes: data.dataset.classes,
      rng,
      quiet: opts.quiet,
    });
    meta.pruning = result;
    log(
      opts.quiet,
      `prune: ${result.candidates.length} candidate(s) (k=${result.k}, threshold ${result.threshold}); ${result.note}`,
    );
    const v = evalVal();
    meta.seconds.prune = result.seconds;
    meta.stageResults.prune = { top1: v?.top1 ?? NaN, top5: v?.top5 ?? NaN, seconds: result.seconds };
    meta.stage = 'done';
    await save(null);
    await copyFile(paths.lastCheckpoint, paths.stageCheckpoint('prune'));
  }

  await saveModel(paths.model, {
    config,
    classes: data.dataset.classes,
    head,
    backbone: data.trainableBackbone,
    push: meta.push,
    trainItems: data.itemsBySplit.train,
    pruning: meta.pruning ?? null,
  });
  const summary = buildSummary(true);
  await writeJson(paths.summary, summary);
  printSummary(summary, opts.quiet);
  // The bundle reads its own copy of the features: let the training copy go first (the
  // gradient workers hold the shared buffers too), or both sit in memory at once.
  await threads.pool?.close();
  threads.pool = null;
  for (const split of Object.keys(data.sources) as SplitName[]) delete data.sources[split];
  const released = cachedSource(
    { n: 0, shape: train.shape, batch: () => new Float32Array(0) },
    null,
    new Int32Array(0),
  );
  train = val = released;
  if (config.bundle.enabled && !opts.skipBundle) {
    if (await bundleIsCurrent(opts.outDir)) {
      log(opts.quiet, `bundle ${paths.bundle} is up to date`);
    } else {
      log(opts.quiet, `building the model bundle in ${paths.bundle}`);
      const report = await buildBundle({ run: opts.outDir, data: data.dataset.root, quiet: opts.quiet });
      log(opts.quiet, formatBundleReport(report));
    }
  }
  return summary;

  function partialSummary(): TrainSummary {
    log(opts.quiet, `stopped after ${epochsThisProcess} epochs as requested; continue with --resume`);
    return buildSummary(false);
  }

  function buildSummary(finished: boolean): TrainSummary {
    const ds = data.dataset;
    const skipped = [...ds.skipped, ...data.skipped];
    return {
      preset: config.preset,
      backend: backend.description,
      dataset: {
        layout: ds.layout,
        root: ds.root,
        classes: ds.classes.length,
        train: ds.splits.train.length,
        val: ds.splits.val.length,
        test: ds.splits.test.length,
        skippedFiles: skipped.length,
        skipped,
      },
      baseline,
      stages: meta.stageResults,
      final: {
        val: finished ? evalVal() : null,
        test: finished && data.sources.test?.n ? accuracy(predict(head, data.sources.test)) : null,
      },
      lastLayerWrongClassNearZero: finished ? lastLayerSparsity(head) : null,
      lastLayerWrongClassZero: finished ? lastLayerSparsity(head, 0) : null,
      pruning: meta.pruning
        ? { applied: meta.pruning.applied, candidates: meta.pruning.candidates.length, note: meta.pruning.note }
        : null,
      seconds: {
        ...(meta.seconds as Record<string, number>),
        total: Object.values(meta.seconds).reduce((a: number, b) => a + (b ?? 0), 0),
      },
      prototypes: head.numPrototypes,
      finished,
    };
  }
}

function meanDistance(push: CheckpointMeta['push']): string {
  if (!push?.length) return 'n/a';
  return (push.reduce((a, r) => a + Math.max(0, r.distance), 0) / push.length).toFixed(3);
}

function trainBaseline(data: PreparedData, config: TrainConfig, rng: Rng, quiet?: boolean): LinearModel {
  const pooled = pooledFeatures(data.sources.train!, { flip: config.data.flip, quiet, label: 'baseline pooling' });
  return trainLinear(pooled, data.dataset.classes.length, { ...BASELINE_TRAINING, rng, quiet });
}

function evalLinear(model: LinearModel, data: PreparedData): { top1: number; top5: number } {
  const val = data.sources.val!;
  if (!val.n) return { top1: NaN, top5: NaN };
  const pooled = pooledFeatures(val, { flip: false, quiet: true });
  const logits = linearLogits(model, pooled.x, pooled.n);
  const acc = accuracy({ n: pooled.n, numClasses: model.numClasses, logits, labels: pooled.labels });
  return { top1: acc.top1, top5: acc.top5 };
}

const pct = (x: number | undefined | null) =>
  x === undefined || x === null || Number.isNaN(x) ? '  n/a' : `${(100 * x).toFixed(1).padStart(5)}%`;

export function printSummary(s: TrainSummary, quiet?: boolean): void {
  if (quiet) return;
  const rows: [string, number | undefined, number | undefined, number | undefined][] = [
    ['baseline (GAP + linear)', s.baseline?.top1, s.baseline?.top5, undefined],
    ['after init', s.stages.init?.top1, s.stages.init?.top5, s.stages.init?.seconds],
    ['after warm-up', s.stages.warmup?.top1, s.stages.warmup?.top5, s.stages.warmup?.seconds],
    ['after joint', s.stages.joint?.top1, s.stages.joint?.top5, s.stages.joint?.seconds],
    ['after push', s.stages.push?.top1, s.stages.push?.top5, s.stages.push?.seconds],
    ['after push-tune (tied)', s.stages.pushTune?.top1, s.stages.pushTune?.top5, s.stages.pushTune?.seconds],
    ['after last layer', s.stages.lastLayer?.top1, s.stages.lastLayer?.top5, s.stages.lastLayer?.seconds],
    ['after pruning', s.stages.prune?.top1, s.stages.prune?.top5, s.stages.prune?.seconds],
  ];
  const lines = [
    `ProtoAtlas run summary (preset ${s.preset}, ${s.prototypes} prototypes, ${s.backend})`,
    `data: ${s.dataset.layout} ${s.dataset.classes} classes, train ${s.dataset.train}, val ${s.dataset.val}, test ${s.dataset.test}; skipped files: ${s.dataset.skippedFiles}`,
    `${'stage'.padEnd(26)} ${'val top-1'.padStart(9)} ${'top-5'.padStart(7)} ${'time'.padStart(7)}`,
    ...rows.map(
      ([name, t1, t5, sec]) =>
        `${name.padEnd(26)} ${pct(t1).padStart(9)} ${pct(t5).padStart(7)} ${sec === undefined ? '' : `${sec.toFixed(0)}s`.padStart(7)}`,
    ),
    ...(s.final.test
      ? [
          `test split (${s.final.test.n} images, reported only): top-1 ${pct(s.final.test.top1).trim()}, top-5 ${pct(s.final.test.top5).trim()}`,
        ]
      : []),
    `wrong-class last-layer weights exactly 0: ${pct(s.lastLayerWrongClassZero ?? undefined)}; near 0 (|w| < 1e-3): ${pct(s.lastLayerWrongClassNearZero ?? undefined)}`,
    `total time ${s.seconds.total.toFixed(0)}s`,
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

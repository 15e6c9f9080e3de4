/**
 * The fine-tuned black-box baseline: the same backbone with global average pooling and a linear
 * softmax layer, trained through the prototype model's warm-up and joint phases with their
 * learning rates, schedules, augmentation, channel dropout, batch and micro-batch sizes and
 * gradient threads. The paper compares a fine-tuned ProtoPNet with its backbone fine-tuned as a
 * black box; a frozen-feature probe would flatter a fine-tuned prototype model. Hours of CPU on
 * CUB, so resumable: a checkpoint after every epoch and every `checkpointMinutes` inside one.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { TrainableBackbone } from '../backbone/types.ts';
import type { TrainConfig } from '../config/config.ts';
import { parseConfig } from '../config/config.ts';
import type { HostTensors } from '../core/host-tensors.ts';
import { pickTensors } from '../core/host-tensors.ts';
import { Rng } from '../core/rng.ts';
import { exists, readJson, writeJson, writeMetrics } from '../core/run-dir.ts';
import { loadTensorFile, saveTensorFile } from '../core/tensor-file.ts';
import { PooledLinearHead } from '../head/pooled-linear-head.ts';
import { prepareData } from '../model/prepare-data.ts';
import { Adam } from '../optim/adam.ts';
import { startGradPoolFor, type GradPool } from '../stages/grad-pool.ts';
import { pooledFeatures } from '../stages/linear-probe.ts';
import { accuracy, type Accuracy } from '../stages/predict.ts';
import { phaseGroups, setPhaseLearningRates, trainEpochSteps, type EpochProgress } from '../stages/prototype-phase.ts';
import type { FeatureSource } from '../stages/sources.ts';

/** The phases the baseline goes through, in order: the prototype model's before push. */
export const BASELINE_PHASES = ['warmup', 'joint'] as const;

export interface BaselineRow {
  stage: (typeof BASELINE_PHASES)[number];
  epoch: number;
  loss: number;
  trainAccuracy: number;
  seconds: number;
  valTop1: number | null;
  valTop5: number | null;
}

interface BaselineCheckpointMeta {
  version: 1;
  kind: 'finetune-baseline';
  /** Index into BASELINE_PHASES of the phase under way (its length when done). */
  phase: number;
  /** Epochs done in that phase. */
  epoch: number;
  rngState: number;
  optimizerSteps: number;
  history: BaselineRow[];
  /** Set when the checkpoint was taken inside an epoch. */
  epochProgress?: EpochProgress;
}

export interface FineTuneBaselineResult {
  config: TrainConfig;
  history: BaselineRow[];
  val: Accuracy | null;
  /** Each validation image's id and predicted class (paired comparisons: trainer/bench/compare-runs.ts). */
  valPredictions: { ids: string[]; labels: number[]; predicted: number[] } | null;
  trainItems: number;
  classes: number;
  /** The dataset's directory. */
  dataRoot: string;
  seconds: number;
}

export function baselinePaths(dir: string) {
  return {
    config: join(dir, 'config.json'),
    checkpoint: join(dir, 'baseline.ckpt'),
    metrics: join(dir, 'metrics.jsonl'),
  };
}

/**
 * Trains (or, with `resume`, continues) the fine-tuned baseline in `outDir`. A resume reads the
 * directory's own config, so it cannot change the recipe half-way. 'stopped' when `stopAfterBatches`
 * batches were done in this process (tests of resume).
 */
export async function fineTuneBaseline(opts: {
  config: TrainConfig;
  dataDir: string | null;
  outDir: string;
  resume: boolean;
  backendName: string;
  quiet?: boolean;
  stopAfterBatches?: number;
}): Promise<FineTuneBaselineResult | 'stopped'> {
  const log = (msg: string) => {
    if (!opts.quiet) process.stderr.write(`${msg}\n`);
  };
  const paths = baselinePaths(opts.outDir);
  const hasCheckpoint = await exists(paths.checkpoint);
  if (hasCheckpoint && !opts.resume)
    throw new Error(
      `${opts.outDir} already holds a baseline run (${paths.checkpoint}); pass --resume to continue it, or choose another --out`,
    );
  let config = opts.config;
  if (hasCheckpoint) {
    config = parseConfig(await readJson<unknown>(paths.config), paths.config);
    log(`resuming ${opts.outDir} (preset ${config.preset})`);
  }
  if (config.backbone.kind !== 'small-cnn' && !config.backbone.trainable)
    throw new Error(
      `preset ${config.preset} keeps its backbone frozen (backbone.trainable false): its baseline is the linear probe on ` +
        'frozen features, which `baseline` trains without fine-tuning',
    );
  await mkdir(opts.outDir, { recursive: true });
  await writeJson(paths.config, config);
  const saved = hasCheckpoint ? await loadTensorFile<BaselineCheckpointMeta>(paths.checkpoint) : null;
  if (saved && saved.meta?.kind !== 'finetune-baseline')
    throw new Error(`${paths.checkpoint} is not a fine-tuned baseline's checkpoint`);

  const t0 = Date.now();
  const data = await prepareData(config, opts.dataDir, { quiet: opts.quiet, splits: ['train', 'val'] });
  const backbone = data.trainableBackbone;
  const train = data.sources.train;
  const val = data.sources.val ?? null;
  if (!backbone || !train) throw new Error(`preset ${config.preset}: no trainable backbone or no training images`);
  const classes = data.dataset.classes.length;
  const rng = new Rng(config.seed);
  const head = new PooledLinearHead({ kind: 'pooled-linear', inputChannels: train.shape[2], numClasses: classes }, rng);
  const meta: BaselineCheckpointMeta = saved?.meta ?? {
    version: 1,
    kind: 'finetune-baseline',
    phase: 0,
    epoch: 0,
    rngState: 0,
    optimizerSteps: 0,
    history: [],
  };
  if (saved) {
    head.setWeights(pickTensors(saved.tensors, 'head.'));
    backbone.setWeights(pickTensors(saved.tensors, 'backbone.', true));
    rng.setState(meta.rngState);
  }
  const started = await startGradPoolFor(data, { threads: config.trainThreads, backend: opts.backendName, head });
  log(`gradient threads: ${started.threads} (${started.why})`);
  const pool = started.pool;
  let batches = 0;

  const save = async (optimizer: Adam | null) => {
    meta.rngState = rng.getState();
    const tensors: HostTensors = new Map(head.getWeights());
    for (const [k, v] of backbone.getWeights()) tensors.set(`backbone.${k}`, v);
    if (optimizer) {
      const st = optimizer.getState();
      meta.optimizerSteps = st.steps;
      for (const [k, v] of st.tensors) tensors.set(k, v);
    }
    await saveTensorFile(paths.checkpoint, meta, tensors);
    await writeMetrics(paths.metrics, meta.history);
  };

  try {
    let last: Scored | null = null;
    for (; meta.phase < BASELINE_PHASES.length; meta.phase++, meta.epoch = 0) {
      const stage = BASELINE_PHASES[meta.phase];
      const phase = config[stage];
      const optimizer = new Adam(phaseGroups(phase, head, backbone));
      if (saved && (meta.epoch > 0 || meta.epochProgress) && meta.optimizerSteps > 0)
        optimizer.setState({ steps: meta.optimizerSteps, tensors: pickTensors(saved.tensors, 'adam.') });
      for (let e = meta.epoch; e < phase.epochs; e++) {
        setPhaseLearningRates(optimizer, phase, e);
        const resumeFrom = meta.epochProgress ?? null;
        delete meta.epochProgress;
        const stats = await trainEpochSteps({
          label: `baseline ${stage} ${e + 1}/${phase.epochs}`,
          phase,
          head,
          source: train,
          loss: config.loss,
          optimizer,
          rng,
          quiet: opts.quiet,
          pool: pool ? { pool, backbone } : null,
          resumeFrom,
          checkpoint: {
            everySeconds: config.checkpointMinutes * 60,
            save: async (progress) => {
              meta.epochProgress = progress;
              await save(optimizer);
            },
            stop: () => opts.stopAfterBatches !== undefined && ++batches >= opts.stopAfterBatches,
          },
        });
        if (stats === 'stopped') {
          log(`stopped after ${batches} batches as requested; continue with --resume`);
          return 'stopped';
        }
        delete meta.epochProgress; // saved inside the epoch just finished
        last = val ? await evaluate(head, val, pool, backbone) : null;
        meta.history.push({
          stage,
          epoch: e + 1,
          loss: stats.loss,
          trainAccuracy: stats.trainAccuracy,
          seconds: stats.seconds,
          valTop1: last?.accuracy.top1 ?? null,
          valTop5: last?.accuracy.top5 ?? null,
        });
        log(
          `baseline ${stage} ${e + 1}/${phase.epochs}: loss ${stats.loss.toFixed(3)}, train ${(100 * stats.trainAccuracy).toFixed(1)}%, ` +
            `val ${last ? `${(100 * last.accuracy.top1).toFixed(1)}%` : 'n/a'}`,
        );
        meta.epoch = e + 1;
        await save(optimizer);
      }
      optimizer.dispose();
    }
    await save(null);
    // A finished run resumed again only scores its weights.
    if (!last && val) last = await evaluate(head, val, pool, backbone);
    return {
      config,
      history: meta.history,
      val: last?.accuracy ?? null,
      valPredictions: last
        ? { ids: data.itemsBySplit.val.map((it) => it.id), labels: [...last.labels], predicted: last.predicted }
        : null,
      trainItems: train.n,
      classes,
      dataRoot: data.dataset.root,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    await pool?.close();
  }
}

interface Scored {
  accuracy: Accuracy;
  /** Top-1 class of each validation image, in the split's order, and its label. */
  predicted: number[];
  labels: Int32Array;
}

/** Validation accuracy of the current weights: eval-mode pooled maps over the threads, then the linear layer. */
async function evaluate(
  head: PooledLinearHead,
  val: FeatureSource,
  pool: GradPool | null,
  backbone: TrainableBackbone,
): Promise<Scored> {
  if (pool) await pool.setBackboneWeights(backbone);
  const pooled = await pooledFeatures(val, { flip: false, pool, quiet: true });
  const C = head.spec.numClasses;
  const logits = head.pooledLogits(pooled.x, pooled.n);
  const predicted = Array.from({ length: pooled.n }, (_, i) => {
    let best = 0;
    for (let c = 1; c < C; c++) if (logits[i * C + c] > logits[i * C + best]) best = c;
    return best;
  });
  return {
    accuracy: accuracy({ n: pooled.n, numClasses: C, logits, labels: pooled.labels }),
    predicted,
    labels: pooled.labels,
  };
}

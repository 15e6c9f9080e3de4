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
import { Rng } from '../core/rng.ts';
import { exists, readJson, writeJson, writeMetrics } from '../core/run-dir.ts';
import { loadTensorFile, saveTensorFile } from '../core/tensor-file.ts';
import { PooledLinearHead } from '../head/pooled-linear-head.ts';
import { prepareData } from '../model/prepare-data.ts';
import { Adam } from '../optim/adam.ts';
import { startGradPoolFor, type GradPool } from '../stages/grad-pool.ts';
import { pooledFeatures } from '../stages/linear-probe.ts';
import { accuracy, type Accuracy } from '../stages/predict.ts';
import { phaseGroups, setPhaseLearningRates, trainEpochSteps } from '../stages/prototype-phase.ts';
import type { FeatureSource } from '../stages/sources.ts';
import { FINISHED } from './checkpoint.ts';
import { runEpochs } from './epoch-runner.ts';
import { RunState, type ResumableMeta, type RunControl } from './run-state.ts';

/** The phases the baseline goes through, in order: the prototype model's before push. */
export const BASELINE_PHASES = ['warmup', 'joint'] as const;

const CHECKPOINT_VERSION = 2;

/** One metrics.jsonl row per epoch. */
export type BaselineRow = {
  stage: (typeof BASELINE_PHASES)[number];
  epoch: number;
  loss: number;
  trainAccuracy: number;
  seconds: number;
  valTop1: number | null;
  valTop5: number | null;
};

interface BaselineCheckpointMeta extends ResumableMeta {
  version: typeof CHECKPOINT_VERSION;
  kind: 'finetune-baseline';
  /** The phase under way, one of BASELINE_PHASES, or FINISHED. */
  stage: string;
  history: BaselineRow[];
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

/** The baseline's run: its checkpoint file holds the linear head, the backbone and the optimiser. */
class BaselineRun extends RunState<BaselineCheckpointMeta, PooledLinearHead> {
  private readonly backbone: TrainableBackbone;
  private readonly paths: ReturnType<typeof baselinePaths>;

  constructor(
    args: ConstructorParameters<typeof RunState<BaselineCheckpointMeta, PooledLinearHead>>[0],
    backbone: TrainableBackbone,
    paths: ReturnType<typeof baselinePaths>,
  ) {
    super(args);
    this.backbone = backbone;
    this.paths = paths;
  }

  protected get trainedBackbone(): TrainableBackbone {
    return this.backbone;
  }

  resume(meta: BaselineCheckpointMeta, tensors: HostTensors): void {
    this.resumeWeights(meta, tensors);
  }

  async save(optimizer: Adam | null): Promise<void> {
    await saveTensorFile(this.paths.checkpoint, this.meta, this.checkpointTensors(optimizer));
    await writeMetrics(this.paths.metrics, this.meta.history);
  }
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
  const control: RunControl = { quiet: opts.quiet, stopAfterBatches: opts.stopAfterBatches };
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
  if (saved && saved.meta?.version !== CHECKPOINT_VERSION)
    throw new Error(
      `${paths.checkpoint} was written by another version of the trainer (checkpoint version ${saved.meta?.version}, ` +
        `this one reads ${CHECKPOINT_VERSION}); start the baseline again in a new --out directory`,
    );

  const t0 = Date.now();
  const data = await prepareData(config, opts.dataDir, { quiet: opts.quiet, splits: ['train', 'val'] });
  const backbone = data.trainableBackbone;
  const train = data.sources.train;
  const val = data.sources.val ?? null;
  if (!backbone || !train) throw new Error(`preset ${config.preset}: no trainable backbone or no training images`);
  const classes = data.dataset.classes.length;
  const rng = new Rng(config.seed);
  const head = new PooledLinearHead({ kind: 'pooled-linear', inputChannels: train.shape[2], numClasses: classes }, rng);
  const meta: BaselineCheckpointMeta = {
    version: CHECKPOINT_VERSION,
    kind: 'finetune-baseline',
    stage: BASELINE_PHASES[0],
    epoch: 0,
    rngState: 0,
    optimizerSteps: 0,
    history: [],
    seconds: {},
  };
  const run = new BaselineRun({ config, head, rng, control, meta }, backbone, paths);
  if (saved?.meta) run.resume(saved.meta, saved.tensors);
  const started = await startGradPoolFor(data, { threads: config.trainThreads, backend: opts.backendName, head });
  log(`gradient threads: ${started.threads} (${started.why})`);
  const pool = started.pool;

  try {
    let last: Scored | null = null;
    for (let p = BASELINE_PHASES.indexOf(run.meta.stage as never); p >= 0 && p < BASELINE_PHASES.length; p++) {
      const stage = BASELINE_PHASES[p];
      const phase = config[stage];
      const optimizer = new Adam(phaseGroups(phase, head, backbone));
      const ended = await runEpochs(run, {
        epochs: phase.epochs,
        optimizer,
        runEpoch: async (e, resumeFrom) => {
          setPhaseLearningRates(optimizer, phase, e);
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
            checkpoint: run.midEpoch(optimizer),
          });
          if (stats === 'stopped') return 'stopped';
          last = val ? await evaluate(head, val, pool, backbone) : null;
          return {
            row: {
              loss: stats.loss,
              trainAccuracy: stats.trainAccuracy,
              seconds: stats.seconds,
              valTop1: last?.accuracy.top1 ?? null,
              valTop5: last?.accuracy.top5 ?? null,
            },
            seconds: stats.seconds,
            log:
              `baseline ${stage} ${e + 1}/${phase.epochs}: loss ${stats.loss.toFixed(3)}, ` +
              `train ${(100 * stats.trainAccuracy).toFixed(1)}%, ` +
              `val ${last ? `${(100 * last.accuracy.top1).toFixed(1)}%` : 'n/a'}`,
          };
        },
      });
      optimizer.dispose();
      if (ended === 'stopped') {
        log('stopped as requested; continue with --resume');
        return 'stopped';
      }
      run.meta.stage = BASELINE_PHASES[p + 1] ?? FINISHED;
      run.meta.epoch = 0;
    }
    await run.save(null);
    // A finished run resumed again only scores its weights.
    const scored: Scored | null = last ?? (val ? await evaluate(head, val, pool, backbone) : null);
    return {
      config,
      history: run.meta.history,
      val: scored?.accuracy ?? null,
      valPredictions: scored
        ? { ids: data.itemsBySplit.val.map((it) => it.id), labels: [...scored.labels], predicted: scored.predicted }
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

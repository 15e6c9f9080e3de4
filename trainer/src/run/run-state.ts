/**
 * What every resumable training run keeps alike, the prototype model's (TrainContext) and the
 * fine-tuned baseline's: the checkpoint record, the random stream, the stop requests of tests,
 * the optimiser state a resume hands to its phase, checkpoints inside an epoch, and the tensors
 * a checkpoint holds (head, backbone, optimiser). Each run writes its own checkpoint file.
 */
import type { TrainableBackbone } from '../backbone/types.ts';
import type { TrainConfig } from '../config/config.ts';
import { pickTensors, type HostTensors } from '../core/host-tensors.ts';
import type { Rng } from '../core/rng.ts';
import type { TrainedHead } from '../head/trained-head.ts';
import type { Adam } from '../optim/adam.ts';
import type { EpochProgress, MidEpochCheckpoint } from '../stages/prototype-phase.ts';

/** What the caller asks of this process: quiet output, and stops for tests of resume. */
export interface RunControl {
  quiet?: boolean;
  /** Stop before an epoch once this many epochs ran in this process. */
  stopAfterEpochs?: number;
  /** Stop inside an epoch once this many batches of epoch-based phases ran in this process. */
  stopAfterBatches?: number;
}

export interface MetricRow {
  /** The phase that trained this epoch. */
  stage: string;
  epoch: number;
  [key: string]: number | string | null;
}

/** The part of a checkpoint record the epoch loop (run/epoch-runner.ts) and resumes read and advance. */
export interface ResumableMeta {
  /** The phase under way (or the next one to run). */
  stage: string;
  /** Epochs completed within `stage`. */
  epoch: number;
  rngState: number;
  optimizerSteps: number;
  history: MetricRow[];
  /** Seconds spent so far, per stage (survives resumes). */
  seconds: Partial<Record<string, number>>;
  /** Set when the checkpoint was taken inside an epoch of `stage` (epoch `epoch + 1`). */
  epochProgress?: EpochProgress;
}

export abstract class RunState<M extends ResumableMeta, H extends TrainedHead> {
  readonly config: TrainConfig;
  readonly head: H;
  readonly rng: Rng;
  readonly control: RunControl;
  /** Everything a checkpoint records besides tensors; phases advance it. */
  meta: M;
  epochsThisProcess = 0;
  private batchesThisProcess = 0;
  /** The resumed checkpoint's tensors, until the first optimiser is built (their `adam.` state belongs to that phase). */
  private resumedOptimizer: HostTensors | null = null;

  constructor(args: { config: TrainConfig; head: H; rng: Rng; control: RunControl; meta: M }) {
    this.config = args.config;
    this.head = args.head;
    this.rng = args.rng;
    this.control = args.control;
    this.meta = args.meta;
  }

  /** The backbone the run trains, if any: its weights go into every checkpoint. */
  protected abstract get trainedBackbone(): TrainableBackbone | null;

  /** Write the run's checkpoint (see checkpointTensors) and its metrics file. */
  abstract save(optimizer: Adam | null): Promise<void>;

  log(msg: string): void {
    if (!this.control.quiet) process.stderr.write(`${msg}\n`);
  }

  /** Continue from a loaded checkpoint: the record, the weights and the random stream. */
  protected resumeWeights(meta: M, tensors: HostTensors): void {
    this.meta = meta;
    this.head.setWeights(pickTensors(tensors, 'head.'));
    this.trainedBackbone?.setWeights(pickTensors(tensors, 'backbone.', true));
    this.rng.setState(meta.rngState);
    this.resumedOptimizer = tensors;
  }

  /**
   * Give a phase's new optimiser the state it had when the run stopped inside that phase. Only the first
   * optimiser built after a resume can be that phase's, and only if the phase had begun (an epoch done, or one
   * under way); a phase that starts afresh starts with a fresh optimiser.
   */
  restoreOptimizer(optimizer: Adam): void {
    const tensors = this.resumedOptimizer;
    this.resumedOptimizer = null;
    if (tensors && (this.meta.epoch > 0 || this.meta.epochProgress))
      optimizer.setState({ steps: this.meta.optimizerSteps, tensors: pickTensors(tensors, 'adam.') });
  }

  stopRequested(): boolean {
    return this.control.stopAfterEpochs !== undefined && this.epochsThisProcess >= this.control.stopAfterEpochs;
  }

  /** Checkpoints inside an epoch: every `checkpointMinutes`, and on a requested batch stop. */
  midEpoch(optimizer: Adam): MidEpochCheckpoint {
    return {
      everySeconds: this.config.checkpointMinutes * 60,
      save: async (progress) => {
        this.meta.epochProgress = progress;
        await this.save(optimizer);
      },
      stop: () =>
        this.control.stopAfterBatches !== undefined && ++this.batchesThisProcess >= this.control.stopAfterBatches,
    };
  }

  /** The progress of the epoch the checkpoint stopped in, once (later epochs start afresh). */
  takeEpochProgress(): EpochProgress | null {
    const p = this.meta.epochProgress ?? null;
    delete this.meta.epochProgress;
    return p;
  }

  /**
   * The tensors every checkpoint holds: the head's (`head.`), the trained backbone's (`backbone.`) and the
   * optimiser's (`adam.`, its step count into `meta`); the random stream's state goes into `meta` too.
   */
  protected checkpointTensors(optimizer: Adam | null): HostTensors {
    this.meta.rngState = this.rng.getState();
    const tensors: HostTensors = new Map(this.head.getWeights());
    const backbone = this.trainedBackbone;
    if (backbone) for (const [k, v] of backbone.getWeights()) tensors.set(`backbone.${k}`, v);
    if (optimizer) {
      const st = optimizer.getState();
      this.meta.optimizerSteps = st.steps;
      for (const [k, v] of st.tensors) tensors.set(k, v);
    }
    return tensors;
  }
}

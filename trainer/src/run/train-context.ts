/**
 * The state one training run of the prototype model shares between its phases: the data and
 * its features, the gradient threads, the phases' own checkpoint tensors, and validation; what
 * every resumable run does alike (checkpoint record, stops, optimiser restore) is RunState's.
 */
import type { TrainableBackbone } from '../backbone/types.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import type { HostTensor, HostTensors } from '../core/host-tensors.ts';
import type { Adam } from '../optim/adam.ts';
import { snapshotFeatures } from '../stages/feature-snapshot.ts';
import { startGradPoolFor, type GradPool } from '../stages/grad-pool.ts';
import { accuracy, predict, type Accuracy } from '../stages/predict.ts';
import { cachedSource, type FeatureSource } from '../stages/sources.ts';
import { TEACHER_TENSOR, teacherFromTensor, teacherToTensor, type TeacherTargets } from '../stages/teacher.ts';
import type { SplitName } from '../data/types.ts';
import { saveCheckpoint, type CheckpointMeta } from './checkpoint.ts';
import type { PhaseConfig, TrainConfig } from '../config/config.ts';
import type { PreparedData } from '../model/prepare-data.ts';
import type { Rng } from '../core/rng.ts';
import { runPaths, writeMetrics } from '../core/run-dir.ts';
import { RunState, type RunControl } from './run-state.ts';

/** Tensor-name prefixes of what save() writes itself; any other name in a checkpoint is a phase's own tensor. */
const OWN_PREFIXES = ['head.', 'backbone.', 'adam.'];

export class TrainContext extends RunState<CheckpointMeta, ProtoHead> {
  readonly data: PreparedData;
  readonly paths: ReturnType<typeof runPaths>;
  /** Training and validation features; after the backbone is fixed, the snapshot of them. */
  train: FeatureSource;
  val: FeatureSource;
  /** A phase's own tensors, written into every checkpoint from now on (e.g. the best last layer so far). */
  readonly phaseTensors: HostTensors = new Map();
  /** The resumed checkpoint's phase tensors. */
  private resumedPhaseTensors: HostTensors = new Map();
  private pool: GradPool | null = null;
  private poolStarted = false;
  private readonly backendName: string;

  constructor(args: {
    config: TrainConfig;
    data: PreparedData;
    head: ProtoHead;
    rng: Rng;
    outDir: string;
    control: RunControl;
    meta: CheckpointMeta;
    backendName: string;
  }) {
    super(args);
    this.data = args.data;
    this.paths = runPaths(args.outDir);
    this.backendName = args.backendName;
    this.train = args.data.sources.train!;
    this.val = args.data.sources.val!;
  }

  protected get trainedBackbone(): TrainableBackbone | null {
    return this.data.trainableBackbone;
  }

  /** Continue from a loaded checkpoint: weights, random stream, and what the phase it stopped in needs. */
  resumeFrom(meta: CheckpointMeta, tensors: HostTensors): void {
    this.resumeWeights(meta, tensors);
    for (const [name, t] of tensors)
      if (!OWN_PREFIXES.some((p) => name.startsWith(p))) this.resumedPhaseTensors.set(name, t);
    this.restoreTeacher();
  }

  /** Distillation targets (loss.distillation): a phase tensor, so every checkpoint carries them for a resume. */
  get teacher(): TeacherTargets | null {
    const t = this.phaseTensors.get(TEACHER_TENSOR);
    return t ? teacherFromTensor(t, this.train.n) : null;
  }

  setTeacher(t: TeacherTargets): void {
    this.phaseTensors.set(TEACHER_TENSOR, teacherToTensor(t));
  }

  /** The resumed checkpoint's distillation targets, when the config asks for distillation. */
  private restoreTeacher(): void {
    if (!(this.config.loss.distillation > 0)) return;
    const t = this.resumedPhaseTensors.get(TEACHER_TENSOR);
    if (!t)
      throw new Error(
        `${this.paths.lastCheckpoint} has no distillation targets (the run began without loss.distillation); ` +
          'start a new run to distil',
      );
    this.setTeacher(teacherFromTensor(t, this.train.n));
  }

  /** A phase tensor of the checkpoint this process resumed from. */
  resumedTensor(name: string): HostTensor | undefined {
    return this.resumedPhaseTensors.get(name);
  }

  /** Validation accuracy, over the gradient threads when they hold the cached features. */
  async evalVal(): Promise<Accuracy | null> {
    return this.val.n ? accuracy(await predict(this.head, this.val, await this.readThreads())) : null;
  }

  /** Write checkpoints/last.ckpt (weights, random stream, `meta`, the optimiser if given, phase tensors) and metrics.jsonl. */
  async save(optimizer: Adam | null): Promise<void> {
    const tensors = this.checkpointTensors(optimizer);
    for (const [k, v] of this.phaseTensors) tensors.set(k, v);
    await saveCheckpoint(this.paths.lastCheckpoint, this.meta, tensors);
    await writeMetrics(this.paths.metrics, this.meta.history);
  }

  /** The gradient threads, started on first use; null: this thread alone. */
  private async gradPool(): Promise<GradPool | null> {
    if (!this.data.trainableBackbone && !this.train.sharedFeatures) return null;
    if (!this.poolStarted) {
      this.poolStarted = true;
      const started = await startGradPoolFor(this.data, {
        threads: this.config.trainThreads,
        backend: this.backendName,
        head: this.head,
      });
      this.log(`gradient threads: ${started.threads} (${started.why})`);
      this.pool = started.pool;
    }
    return this.pool;
  }

  /**
   * Threads for passes that only read cached features (pooling, evaluation, push, searches), started now
   * if need be; null with a trainable backbone, whose batch-norm statistics differ between threads, and
   * once the features are released.
   */
  async readThreads(): Promise<GradPool | null> {
    return this.data.trainableBackbone ? null : this.gradPool();
  }

  /** Threads for a phase's epoch, or null when it runs on this thread. */
  async gradThreads(phase: PhaseConfig): Promise<{ pool: GradPool; backbone: TrainableBackbone | null } | null> {
    const backbone = this.data.trainableBackbone;
    // Threads take whole micro-batches (of images, or of cached features for a frozen backbone);
    // a phase without them, or on the feature snapshot (push-tune), runs on this thread.
    if (!phase.microBatch || !(backbone ? this.train.shared : this.train.sharedFeatures)) return null;
    const pool = await this.gradPool();
    return pool ? { pool, backbone } : null;
  }

  /** Once the backbone is fixed its features are computed once, for every later phase. */
  async fixBackbone(): Promise<void> {
    const backbone = this.data.trainableBackbone;
    if (!backbone || !this.train.shared) return;
    const pool = await this.gradPool();
    await pool?.setBackboneWeights(backbone);
    const t0 = Date.now();
    const quiet = this.control.quiet;
    this.train = await snapshotFeatures(this.train, { name: 'train', flip: this.train.canFlip, pool, quiet });
    if (this.val.n) this.val = await snapshotFeatures(this.val, { name: 'val', flip: false, pool, quiet });
    this.meta.seconds.snapshot = (this.meta.seconds.snapshot ?? 0) + (Date.now() - t0) / 1000;
  }

  async closeThreads(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.close();
  }

  /**
   * Let the training features go (the bundle reads its own copy: both would sit in memory at once).
   * The gradient threads hold the shared buffers too, so they close first.
   */
  async releaseFeatures(): Promise<void> {
    await this.closeThreads();
    for (const split of Object.keys(this.data.sources) as SplitName[]) delete this.data.sources[split];
    const released = cachedSource(
      { n: 0, shape: this.train.shape, batch: () => new Float32Array(0) },
      null,
      new Int32Array(0),
    );
    this.train = this.val = released;
  }
}

import { z } from 'zod';
import { ACTIVATION_NAMES } from '../head/activations.ts';

const Triple = z.tuple([z.number(), z.number(), z.number()]);

export const PreprocessSchema = z.object({
  size: z.number().int().positive(),
  mean: Triple,
  std: Triple,
});

/** Where weights come from: a local path wins; a URL is downloaded and sha256-checked. */
const WeightsSource = {
  path: z
    .string()
    .optional()
    .describe('weights file, relative paths resolve against $PROTOPNET_DATA (default ../shared/data)'),
  url: z.string().url().optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
};

export const BackboneSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('onnx'),
    ...WeightsSource,
    tap: z.string().default('auto').describe("tensor to tap, or 'auto' = input of the global average pool"),
    preprocess: PreprocessSchema,
    threads: z.number().int().positive().optional(),
    /**
     * A quantised (QOperator) model's arithmetic: 'int8' as published, or 'float': its int8
     * weights on float kernels (activations unrounded), the faster form in WebAssembly.
     */
    compute: z.enum(['int8', 'float']).default('int8'),
    /**
     * Pixels per feature-map cell: 16 dilates the last stage (DeepLab) so MobileNetV2 gives a 14x14 grid at
     * 224 px instead of 7x7, with the same weights. Absent: the network as published.
     */
    outputStride: z.union([z.literal(8), z.literal(16), z.literal(32)]).optional(),
    /** Import the graph as float TensorFlow.js ops so the joint stage can fine-tune it (int8 weights dequantised). */
    trainable: z.boolean().default(false),
    /**
     * With `trainable`: fine-tune only the layers after this tensor (e.g. 624_quantized, the input of
     * MobileNetV2's last 1x1 conv), on cached activations of the frozen layers before it. Absent: the
     * whole network trains on images.
     */
    trainFrom: z.string().min(1).optional(),
  }),
  z.object({
    kind: z.literal('tfjs-layers'),
    ...WeightsSource,
    cutLayer: z.string().default('out_relu'),
    preprocess: PreprocessSchema,
    trainable: z.boolean().default(false),
  }),
  z.object({
    kind: z.literal('small-cnn'),
    inputSize: z.number().int().positive().default(56),
    channels: z.array(z.number().int().positive()).min(1).default([32, 64, 128]),
    /** 2: stride-2 + stride-1 conv per stage; 1: stride-2 only (smaller receptive field). */
    convsPerStage: z.union([z.literal(1), z.literal(2)]).default(2),
  }),
]);

const LrSchema = z.object({
  features: z.number().nonnegative().default(1e-4),
  addOn: z.number().nonnegative().default(3e-3),
  prototypes: z.number().nonnegative().default(3e-3),
  lastLayer: z.number().nonnegative().default(0),
});

const PhaseSchema = z.object({
  epochs: z.number().int().nonnegative(),
  batchSize: z.number().int().positive().default(80),
  lr: LrSchema.default(LrSchema.parse({})),
  /** Multiply every lr by `gamma` every `stepEpochs` epochs (0 = constant); 'cosine' anneals to 0. */
  schedule: z.enum(['step', 'cosine', 'constant']).default('constant'),
  stepEpochs: z.number().int().positive().default(5),
  gamma: z.number().positive().default(0.1),
  /** Dropout on the backbone features before the add-on layers (regularisation; 0 in the paper). */
  inputDropout: z
    .number()
    .min(0)
    .max(0.95)
    .default(0)
    .describe('channel dropout on backbone features per image (0 in the paper)'),
  /** Split each batch into chunks of this size and accumulate gradients (same update, less memory). */
  microBatch: z.number().int().positive().optional(),
});

export const TrainConfigSchema = z.object({
  preset: z.string(),
  seed: z.number().int().nonnegative().default(0),
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  data: z.object({
    valPerClass: z.number().int().nonnegative().default(5),
    /**
     * Training images per class held out for explanation metrics only (consistency and stability need
     * enough images per class for their 80% rule; validation images drive choices, these never do).
     */
    metricsPerClass: z.number().int().nonnegative().default(0),
    /** Use horizontally flipped copies of training images (offline augmentation). */
    flip: z.boolean().default(true),
    /**
     * Online augmentation when the backbone trains (images in memory): the paper's
     * rotation, shear and skew, plus random crops. Ignored for cached frozen features.
     */
    augment: z
      .object({
        enabled: z.boolean().default(false),
        rotation: z.number().min(0).max(45).default(15),
        shear: z.number().min(0).max(30).default(10),
        skew: z.number().min(0).max(0.45).default(0.2),
        cropScale: z.number().min(0.3).max(1).default(0.8),
        probability: z.number().min(0).max(1).default(0.5),
      })
      .default({ enabled: false, rotation: 15, shear: 10, skew: 0.2, cropScale: 0.8, probability: 0.5 }),
  }),
  backbone: BackboneSchema,
  head: z.object({
    addOn: z
      .array(
        z.object({
          channels: z.number().int().positive(),
          activation: z.enum(ACTIVATION_NAMES as [string, ...string[]]),
        }),
      )
      .default([
        { channels: 128, activation: 'relu' },
        { channels: 128, activation: 'sigmoid' },
      ]),
    prototypesPerClass: z.number().int().positive().default(10),
    incorrectClassWeight: z.number().default(-0.5),
    /** 'uniform': U[0,1) as the paper; 'patches': real own-class patches, most class-evidential first. */
    prototypeInit: z.enum(['uniform', 'patches']).default('uniform'),
  }),
  loss: z.object({
    crossEntropy: z.number().default(1),
    clusterCost: z.number().default(0.8),
    separationCost: z.number().default(-0.08),
  }),
  warmup: PhaseSchema,
  joint: PhaseSchema,
  push: z.object({ enabled: z.boolean().default(true) }),
  /**
   * After push, train the add-on layers with every prototype tied to its source
   * patch (prototype = embedding of that patch), so accuracy lost at push is
   * regained while prototypes stay exactly on real patches. 0 epochs = the paper.
   */
  pushTune: PhaseSchema.default(PhaseSchema.parse({ epochs: 0 })),
  lastLayer: z.object({
    epochs: z.number().int().nonnegative().default(20),
    batchSize: z.number().int().positive().default(80),
    lr: z.number().positive().default(1e-4),
    l1: z.number().nonnegative().default(1e-4),
    /**
     * How the L1 term on wrong-class weights is optimised: 'subgradient' adds its gradient (the paper's code;
     * weights hover near their start), 'proximal' soft-thresholds after each step so they reach exactly 0.
     */
    l1Solver: z.enum(['subgradient', 'proximal']).default('subgradient'),
    /** Keep the epoch (0 = unchanged) with the best validation top-1; false = the paper (last epoch). */
    selectBest: z.boolean().default(false),
  }),
  /**
   * Paper Sec. 2.5: drop prototypes whose k nearest training patches hold fewer
   * than `threshold` of their class, then re-optimise the last layer. 'auto'
   * keeps the pruned model only if validation top-1 does not drop.
   */
  prune: z
    .object({
      mode: z.enum(['auto', 'on', 'off']).default('auto'),
      k: z.number().int().positive().default(6),
      threshold: z.number().int().nonnegative().default(3),
    })
    .default({ mode: 'auto', k: 6, threshold: 3 }),
  /** The model bundle (explanations, atlas images, manifest) built at the end of training. */
  bundle: z
    .object({
      enabled: z.boolean().default(true),
      /** Nearest training and validation patches per prototype. */
      nearest: z.number().int().nonnegative().default(5),
      /** Part-based consistency/stability (needs part annotations; costs two passes over the split). */
      partMetrics: z.boolean().default(true),
    })
    .default({ enabled: true, nearest: 5, partMetrics: true }),
  featureCacheDir: z.string().default('.cache/features'),
  /**
   * Threads computing each batch's gradients while a trainable backbone runs on a
   * single-threaded backend (tfjs wasm): 'auto' = one per core. Each thread takes
   * whole micro-batches; the update is the one a single thread makes.
   */
  trainThreads: z.union([z.literal('auto'), z.number().int().positive()]).default('auto'),
  /** Save a checkpoint inside an epoch at most this often, so a killed run loses at most this much (0 = after every batch). */
  checkpointMinutes: z.number().nonnegative().default(10),
});

export type TrainConfig = z.infer<typeof TrainConfigSchema>;
export type PhaseConfig = TrainConfig['warmup'];
export type BackboneConfig = TrainConfig['backbone'];

/** Deep merge for config overrides: objects merge, arrays and scalars replace. */
export function deepMerge<T>(base: T, override: unknown): T {
  if (override === undefined) return base;
  if (
    typeof base !== 'object' ||
    base === null ||
    Array.isArray(base) ||
    typeof override !== 'object' ||
    override === null ||
    Array.isArray(override)
  ) {
    return override as T;
  }
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(override as Record<string, unknown>)) out[k] = deepMerge(out[k], v);
  return out as T;
}

/** Validate a config, turning zod's issues into one message naming each bad field. */
export function parseConfig(raw: unknown, source: string): TrainConfig {
  const res = TrainConfigSchema.safeParse(raw);
  if (!res.success) {
    const lines = res.error.issues.map((i) => `  - ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`invalid training config (${source}):\n${lines.join('\n')}`);
  }
  return res.data;
}

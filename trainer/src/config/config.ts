/**
 * The training config: one zod schema that validates config files and presets and declares every default
 * and every field's description (docs/config.md is generated from it by scripts/gen-docs.ts).
 */
import { z } from 'zod';
import { ACTIVATION_NAMES, type ActivationName } from '../head/activations.ts';
import { MAX_INPUT_BLUR } from '../backbone/input-blur.ts';

const Triple = z.tuple([z.number(), z.number(), z.number()]);

export const PreprocessSchema = z
  .object({
    size: z.number().int().positive().describe('square input size in pixels (images are stretched to it)'),
    mean: Triple.describe('per-channel mean subtracted from RGB values in 0-1'),
    std: Triple.describe('per-channel standard deviation divided into RGB values in 0-1'),
  })
  .describe('how an image becomes the backbone input');

/** Where weights come from: a local path wins; a URL is downloaded and sha256-checked. */
const WeightsSource = {
  path: z
    .string()
    .optional()
    .describe('weights file, relative paths resolve against $PROTOPNET_DATA (default ../shared/data)'),
  url: z.string().url().optional().describe('where to download the weights when `path` is absent'),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional()
    .describe('expected sha256 of the downloaded weights (hex)'),
};

export const BackboneSchema = z
  .discriminatedUnion('kind', [
    z.object({
      kind: z.literal('onnx').describe('an ONNX model (e.g. the published int8 MobileNetV2), run by onnxruntime'),
      ...WeightsSource,
      tap: z.string().default('auto').describe("tensor to tap, or 'auto' = input of the global average pool"),
      preprocess: PreprocessSchema,
      threads: z.number().int().positive().optional().describe('onnxruntime threads (absent: one per core)'),
      compute: z
        .enum(['int8', 'float'])
        .default('int8')
        .describe(
          "a quantised model's arithmetic: 'int8' as published, or 'float' (its int8 weights on float kernels, " +
            'activations unrounded: the faster form in WebAssembly)',
        ),
      outputStride: z
        .union([z.literal(8), z.literal(16), z.literal(32)])
        .optional()
        .describe(
          'pixels per feature-map cell: 16 dilates the last stage so MobileNetV2 gives a 14x14 grid at 224 px ' +
            '(same weights); absent: the network as published',
        ),
      inputBlur: z
        .number()
        .min(0)
        .max(MAX_INPUT_BLUR)
        .default(0)
        .describe(
          'sigma, in input pixels, of a fixed Gaussian blur inserted before the network (never trained, also when the backbone is): ' +
            'pixel noise moves explanations less; 0: none',
        ),
      trainable: z
        .boolean()
        .default(false)
        .describe('import the graph as float TensorFlow.js ops so the joint stage fine-tunes it'),
      // The layers before the tensor run once, on cached activations, so an epoch costs the top's share.
      trainFrom: z
        .string()
        .min(1)
        .optional()
        .describe(
          'with `trainable`: fine-tune only the layers after this tensor (e.g. 624_quantized, the input of ' +
            "MobileNetV2's last 1x1 conv); absent: the whole network trains on images",
        ),
    }),
    z.object({
      kind: z.literal('tfjs-layers').describe('a TensorFlow.js layers model cut at a named layer'),
      ...WeightsSource,
      cutLayer: z.string().default('out_relu').describe('layer whose output is the feature map'),
      preprocess: PreprocessSchema,
      trainable: z.boolean().default(false).describe('fine-tune the backbone in the joint stage'),
    }),
    z.object({
      kind: z.literal('small-cnn').describe('a small CNN trained from scratch (the demo)'),
      inputSize: z.number().int().positive().default(56).describe('square input size in pixels'),
      channels: z
        .array(z.number().int().positive())
        .min(1)
        .default([32, 64, 128])
        .describe('channels of each stage (each stage halves the grid)'),
      convsPerStage: z
        .union([z.literal(1), z.literal(2)])
        .default(2)
        .describe('2: stride-2 + stride-1 conv per stage; 1: stride-2 only (smaller receptive field)'),
    }),
  ])
  .describe('the feature extractor; `kind` selects the fields that apply');

const LrSchema = z
  .object({
    features: z.number().nonnegative().default(1e-4).describe('learning rate of a trainable backbone'),
    addOn: z.number().nonnegative().default(3e-3).describe('learning rate of the add-on layers'),
    prototypes: z.number().nonnegative().default(3e-3).describe('learning rate of the prototypes'),
    lastLayer: z.number().nonnegative().default(0).describe('learning rate of the last layer'),
  })
  .describe('learning rate per parameter group (0 freezes the group)');

export const PhaseSchema = z.object({
  epochs: z.number().int().nonnegative().describe('epochs of this phase (0 skips it)'),
  batchSize: z.number().int().positive().default(80).describe('images per optimiser step'),
  lr: LrSchema.prefault({}),
  schedule: z
    .enum(['step', 'cosine', 'constant'])
    .default('constant')
    .describe("'step': every lr x `gamma` every `stepEpochs` epochs; 'cosine': anneals to 0; 'constant'"),
  stepEpochs: z
    .number()
    .int()
    .positive()
    .default(5)
    .describe("epochs between two decays of the 'step' schedule (ignored by the others)"),
  gamma: z.number().positive().default(0.1).describe("factor of each 'step' decay"),
  // Regularisation that the paper does not use; it helps on frozen features (docs/cub-preset.md).
  inputDropout: z
    .number()
    .min(0)
    .max(0.95)
    .default(0)
    .describe('channel dropout on backbone features per image (0 in the paper)'),
  microBatch: z
    .number()
    .int()
    .positive()
    .optional()
    .describe('split each batch into chunks of this size and accumulate gradients (same update, less memory)'),
  // The reference code's Adam has weight_decay 1e-3 on the backbone and the add-on (biases included),
  // none on the prototypes or the last layer; coupled, as torch.optim.Adam applies it.
  weightDecay: z
    .object({
      features: z.number().nonnegative().default(0).describe('L2 weight decay of a trainable backbone'),
      addOn: z.number().nonnegative().default(0).describe('L2 weight decay of the add-on layers'),
    })
    .prefault({})
    .describe("L2 weight decay per group, added to the gradient (torch's Adam weight_decay; 1e-3 in the paper)"),
});

export const TrainConfigSchema = z
  .object({
    preset: z.string().describe('name of the preset this config came from (recorded in the bundle)'),
    seed: z.number().int().nonnegative().default(0).describe('seed of every random choice (split, init, batches)'),
    backend: z
      .enum(['auto', 'tensorflow', 'wasm', 'cpu'])
      .default('auto')
      .describe("TensorFlow.js backend; 'auto': native TensorFlow when installed, else wasm"),
    data: z
      .object({
        valPerClass: z
          .number()
          .int()
          .nonnegative()
          .default(5)
          .describe('training images per class held out for validation'),
        // Consistency and stability need enough images per class for their 80% rule; validation images drive
        // choices, these never do.
        metricsPerClass: z
          .number()
          .int()
          .nonnegative()
          .default(0)
          .describe('training images per class held out for explanation metrics only'),
        flip: z.boolean().default(true).describe('add horizontally flipped copies of training images (offline)'),
        augment: z
          .object({
            enabled: z
              .boolean()
              .default(false)
              .describe('online augmentation when the backbone trains (ignored for cached frozen features)'),
            rotation: z.number().min(0).max(45).default(15).describe('maximum rotation, degrees'),
            shear: z.number().min(0).max(30).default(10).describe('maximum shear, degrees'),
            skew: z.number().min(0).max(0.45).default(0.2).describe('maximum perspective skew (share of the side)'),
            cropScale: z.number().min(0.3).max(1).default(0.8).describe('smallest random crop (share of the side)'),
            probability: z.number().min(0).max(1).default(0.5).describe('chance of each transform per image'),
            noise: z
              .number()
              .min(0)
              .max(1)
              .default(0)
              .describe(
                'std of Gaussian noise added to the normalised input of every augmented image, clipped at 1.25 times ' +
                  "it (Huang et al.'s stability perturbation is 0.2)",
              ),
            cachedCopies: z
              .number()
              .int()
              .min(0)
              .max(8)
              .default(0)
              .describe(
                'frozen backbone: augmented copies of each training image (one fixed random transform and mirroring ' +
                  'each) whose feature maps are cached; each epoch draws every image from its plain or augmented copies',
              ),
          })
          .prefault({})
          .describe("the paper's rotation, shear and skew, plus random crops"),
      })
      .describe('dataset split and augmentation'),
    backbone: BackboneSchema,
    head: z
      .object({
        addOn: z
          .array(
            z.object({
              channels: z.number().int().positive().describe('output channels of this 1x1 convolution'),
              activation: z
                .enum(ACTIVATION_NAMES as [ActivationName, ...ActivationName[]])
                .describe('activation after it'),
            }),
          )
          .default([
            { channels: 128, activation: 'relu' },
            { channels: 128, activation: 'sigmoid' },
          ])
          .describe('the add-on 1x1 convolutions between backbone and prototypes (the last sets the latent size)'),
        prototypesPerClass: z.number().int().positive().default(10).describe('prototypes per class'),
        incorrectClassWeight: z
          .number()
          .default(-0.5)
          .describe('initial last-layer weight from a prototype to the other classes'),
        similarityEpsilon: z
          .number()
          .positive()
          .max(1)
          .default(1e-4)
          .describe(
            'epsilon of the similarity log((d+1)/(d+eps)): the largest similarity is log(1/eps), reached at d = 0 (paper: 1e-4)',
          ),
        similarityTopK: z
          .number()
          .int()
          .positive()
          .default(1)
          .describe(
            "patches a prototype's similarity averages over: the mean log similarity of its k most similar patches (ProtoPNeXt's top-k); 1: the paper's single closest patch. Bundles export k = 1 only",
          ),
        prototypeInit: z
          .enum(['uniform', 'patches'])
          .default('uniform')
          .describe("'uniform': U[0,1) as the paper; 'patches': real own-class patches, most class-evidential first"),
        // With unit patch embeddings a free prototype can sit inside the sphere, between the patches it
        // averages; push then moves it to the surface and changes every similarity it computes.
        prototypeSphere: z
          .boolean()
          .default(false)
          .describe(
            'keep prototypes unit vectors after every step (needs an l2norm add-on): push then moves a prototype only along the sphere',
          ),
      })
      .superRefine((head, ctx) => {
        const last = head.addOn.at(-1)?.activation;
        if (head.prototypeSphere && last !== 'l2norm')
          ctx.addIssue({
            code: 'custom',
            path: ['prototypeSphere'],
            message: `needs an add-on ending in 'l2norm' (unit patch embeddings); the last add-on layer is '${last ?? 'none'}'`,
          });
      })
      .describe('add-on layers, prototypes and last layer'),
    loss: z
      .object({
        crossEntropy: z.number().default(1).describe('weight of the cross-entropy term'),
        clusterCost: z.number().default(0.8).describe('weight of the cluster cost (pulls patches to own prototypes)'),
        separationCost: z
          .number()
          .default(-0.08)
          .describe('weight of the separation cost (pushes patches from other prototypes)'),
        // Not in the paper. Clst pulls each image to its nearest own prototype only, so a prototype can settle
        // between patches of different images; push then moves it far.
        presenceCost: z
          .number()
          .nonnegative()
          .default(0)
          .describe(
            "weight of the presence cost: each own-class prototype's distance to its nearest patch in every image " +
              'of its class, averaged (pulls prototypes onto what their class has in common; 0 in the paper)',
          ),
        // Not in the paper. The black-box baseline on the same frozen features spreads its probability over
        // similar species; its soft targets carry that to the prototype model, whose own targets are one-hot.
        distillation: z
          .number()
          .nonnegative()
          .default(0)
          .describe(
            "weight of the distillation term: KL divergence from the same-backbone baseline's softened predictions " +
              "to the model's, times T^2 (frozen backbones only; 0 in the paper)",
          ),
        distillationTemperature: z
          .number()
          .positive()
          .default(4)
          .describe('temperature T that softens both predictions in the distillation term'),
        // Not in the paper: Huang et al. (ICCV 2023) and TesNet keep a class's prototypes apart, so that
        // they do not collapse onto the same part.
        orthogonality: z
          .number()
          .nonnegative()
          .default(0)
          .describe(
            "weight of the orthogonality term: the sum over classes of |cos| between every two of a class's " +
              'free prototypes (not while tied to patches; Huang et al. use 1e-4; 0 in the paper)',
          ),
        // Not in the paper: Huang et al.'s shallow-deep feature alignment (SDFA), which they add to make a
        // prototype match the same part across images. It shapes the backbone, so it needs one that trains.
        shallowAlignment: z
          .number()
          .nonnegative()
          .default(0)
          .describe(
            "weight of the shallow alignment term: at each own-class prototype's best patch, the deep features' " +
              "cosine similarity to the image's other patches should be the shallow features' (Huang et al.'s " +
              'SDFA; phases that train the backbone only; Huang et al. use 0.5; 0 in the paper)',
          ),
        shallowAlignmentMargin: z
          .number()
          .nonnegative()
          .default(0.1)
          .describe('differences of similarity below this margin cost nothing in the shallow alignment term'),
        shallowAlignmentTensor: z
          .string()
          .default('')
          .describe(
            'the backbone tensor (ONNX name) whose maps are the shallow features of the alignment term; its ' +
              'height and width must be whole multiples of the feature grid (MobileNetV2 int8: 339_quantized, 56×56)',
          ),
        // Not in the paper: the training images' part annotations teach each tied prototype to match best on
        // the part its pushed patch shows, on every image of its class (what consistency asks on held-out images).
        partLocalisation: z
          .number()
          .nonnegative()
          .default(0)
          .describe(
            "weight of the part localisation term (push-tune; also joint with partLocalisationJoint): each prototype takes the annotated part nearest its pushed patch, and on its class's training images its best patch should lie on that part, beating every other patch by the margin (CUB part annotations; 0 in the paper)",
          ),
        partLocalisationJoint: z
          .boolean()
          .default(false)
          .describe(
            "the part localisation term acts in the joint stage too, where the backbone trains: each prototype takes the annotated part nearest the real patch it was initialised at (head.prototypeInit 'patches'), and part points follow each training image's augmentation",
          ),
        partLocalisationRadius: z
          .number()
          .nonnegative()
          .default(24)
          .describe(
            "input pixels (each axis) within which a patch centre is on a part, and within which a prototype's pushed patch must lie of a part for it to get one",
          ),
        partLocalisationMargin: z
          .number()
          .nonnegative()
          .default(0.1)
          .describe('squared distance by which the best on-part patch should beat every other patch'),
      })
      .describe('weights of the loss terms of warm-up, joint and push-tune'),
    warmup: PhaseSchema.describe('stage 1a: add-on layers and prototypes on a frozen backbone'),
    joint: PhaseSchema.describe('stage 1b: every group trains, the backbone too when it is trainable'),
    push: z
      .object({
        enabled: z.boolean().default(true).describe('project each prototype onto its nearest patch'),
        partRadius: z
          .number()
          .nonnegative()
          .nullable()
          .default(null)
          .describe(
            'push only onto patches whose centre lies within this many input pixels (along x and y) of an ' +
              "annotated part of their image (CUB's parts/); null: every patch",
          ),
      })
      .describe('stage 2: push'),
    // 0 epochs = the paper: no tuning after push.
    pushTune: PhaseSchema.prefault({ epochs: 0 }).describe(
      'after push, the add-on layers train with each prototype tied to its source patch; at lr.features > 0 a ' +
        'trainable backbone trains too, the patches re-read each epoch',
    ),
    lastLayer: z
      .object({
        epochs: z.number().int().nonnegative().default(20).describe('epochs of stage 3'),
        batchSize: z.number().int().positive().default(80).describe('images per optimiser step'),
        lr: z.number().positive().default(1e-4).describe('learning rate'),
        l1: z.number().nonnegative().default(1e-4).describe('weight of the L1 term on wrong-class weights'),
        l1Solver: z
          .enum(['subgradient', 'proximal'])
          .default('subgradient')
          .describe(
            "'subgradient' adds the L1 gradient (the paper's code); 'proximal' soft-thresholds after each step, " +
              'so wrong-class weights reach exactly 0',
          ),
        selectBest: z
          .boolean()
          .default(false)
          .describe('keep the epoch (0 = unchanged) with the best validation top-1; false: the last (the paper)'),
      })
      .describe('stage 3: the last layer alone, on frozen prototypes'),
    prune: z
      .object({
        mode: z
          .enum(['auto', 'on', 'off'])
          .default('auto')
          .describe(
            "'auto' keeps the pruned model only if validation top-1 does not drop and every class keeps a prototype",
          ),
        k: z.number().int().positive().default(6).describe('nearest training patches examined per prototype'),
        threshold: z
          .number()
          .int()
          .nonnegative()
          .default(3)
          .describe('a prototype with fewer own-class patches among them is pruned'),
        // Stage 3's small steps barely move the remaining weights after many prototypes go (docs/cub-results.md).
        refitLr: z
          .number()
          .positive()
          .nullable()
          .default(null)
          .describe("learning rate of the last-layer refit after pruning (null: stage 3's lastLayer.lr)"),
        refitEpochs: z
          .number()
          .int()
          .positive()
          .nullable()
          .default(null)
          .describe("epochs of the last-layer refit after pruning (null: stage 3's lastLayer.epochs)"),
      })
      .prefault({})
      .describe('paper Sec. 2.5: drop prototypes with impure neighbours, then re-optimise the last layer'),
    bundle: z
      .object({
        enabled: z.boolean().default(true).describe('build the bundle at the end of training'),
        nearest: z.number().int().nonnegative().default(5).describe('nearest training and validation patches kept'),
        // Part metrics cost two passes over the split.
        partMetrics: z
          .boolean()
          .default(true)
          .describe('part-based consistency and stability (needs part annotations)'),
      })
      .prefault({})
      .describe('the model bundle (explanations, atlas images, manifest)'),
    featureCacheDir: z
      .string()
      .default('.cache/features')
      .describe('where backbone features are cached (relative to the repository)'),
    featureCacheEncoding: z
      .enum(['float16', 'uint8'])
      .default('float16')
      .describe(
        "how a frozen float backbone's cached features are stored: float16, or uint8 on the 8-bit grid of an int8 " +
          "ONNX model run on float kernels (half the memory; quantised backbones' features are uint8 anyway)",
      ),
    // The update is the one a single thread makes: each thread takes whole micro-batches.
    trainThreads: z
      .union([z.literal('auto'), z.number().int().positive()])
      .default('auto')
      .describe("gradient threads when a trainable backbone runs on tfjs wasm; 'auto': one per core"),
    checkpointMinutes: z
      .number()
      .nonnegative()
      .default(10)
      .describe('save a checkpoint inside an epoch at most this often (0: after every batch)'),
  })
  .superRefine((config, ctx) => {
    if (config.head.similarityTopK > 1 && config.bundle.enabled)
      ctx.addIssue({
        code: 'custom',
        path: ['head', 'similarityTopK'],
        message: `${config.head.similarityTopK} averages several patches, which the bundle's ONNX model and explanations do not compute (they take the single closest patch); train with "bundle": {"enabled": false}, or set it to 1`,
      });
    // The teacher is the GAP + linear baseline, which exists only on frozen pretrained features.
    const frozen = config.backbone.kind !== 'small-cnn' && !config.backbone.trainable;
    if (config.loss.distillation > 0 && !frozen)
      ctx.addIssue({
        code: 'custom',
        path: ['loss', 'distillation'],
        message: `needs a frozen pretrained backbone (the teacher is the GAP + linear baseline on its features); the ${config.backbone.kind} backbone here trains, so set it to 0`,
      });
    // Part points follow a mirror and online augmentation, not the fixed draws of cached augmented copies.
    if (config.loss.partLocalisation > 0 && config.data.augment.cachedCopies > 0)
      ctx.addIssue({
        code: 'custom',
        path: ['loss', 'partLocalisation'],
        message:
          'cannot place the part annotations on cached augmented copies: set data.augment.cachedCopies to 0, or set it to 0',
      });
    if (config.loss.partLocalisationJoint) {
      const why = !(config.loss.partLocalisation > 0)
        ? 'loss.partLocalisation is 0, so the term has no weight'
        : config.head.prototypeInit !== 'patches'
          ? `head.prototypeInit is "${config.head.prototypeInit}", so prototypes start at no real patch (use "patches")`
          : frozen
            ? 'the backbone is frozen, so there is no joint stage that trains it'
            : !(config.joint.epochs > 0)
              ? 'joint.epochs is 0'
              : null;
      if (why)
        ctx.addIssue({
          code: 'custom',
          path: ['loss', 'partLocalisationJoint'],
          message: `acts in the joint stage, but ${why}: fix that, or set it to false`,
        });
    }
    if (config.loss.shallowAlignment > 0) {
      // The term moves the deep features toward the shallow ones' structure: only a trainable network has both.
      const b = config.backbone;
      const why =
        b.kind !== 'onnx'
          ? `backbone.kind is "${b.kind}"`
          : !b.trainable
            ? 'the backbone is frozen'
            : b.trainFrom
              ? `only the layers after ${b.trainFrom} train (backbone.trainFrom)`
              : null;
      if (why)
        ctx.addIssue({
          code: 'custom',
          path: ['loss', 'shallowAlignment'],
          message: `needs an ONNX backbone that trains from the image (backbone.kind "onnx", trainable, no trainFrom); here ${why}, so set it to 0`,
        });
      if (!config.loss.shallowAlignmentTensor)
        ctx.addIssue({
          code: 'custom',
          path: ['loss', 'shallowAlignmentTensor'],
          message:
            'name the backbone tensor whose maps are the shallow features (MobileNetV2 int8: "339_quantized") when loss.shallowAlignment is on',
        });
    }
  });

/** What a preset or config file may say: the schema's input, with every defaulted field optional. */
export type TrainConfigInput = z.input<typeof TrainConfigSchema>;
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

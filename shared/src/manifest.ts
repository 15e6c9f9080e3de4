/**
 * The bundle manifest's zod schema: the one contract between the trainer that writes a bundle and the edge
 * and site that read it. docs/bundle.md is generated from it (scripts/gen-docs.ts).
 */
import { z } from 'zod';

/** Bumped on any change that an older reader would misread. */
export const MANIFEST_SCHEMA_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

const BoxSchema = z
  .object({
    x: z.number().int().nonnegative(),
    y: z.number().int().nonnegative(),
    w: z.number().int().positive(),
    h: z.number().int().positive(),
  })
  .meta({ id: 'Box', description: 'a box in pixels: left, top, width, height' });
const Rel = z
  .string()
  .min(1)
  .refine(
    (p) => !p.startsWith('/') && !p.split('/').includes('..') && !p.includes('\\'),
    'must be a relative path inside the bundle (no "..", no leading "/")',
  );
const Unit = z.number().min(0).max(1);
const Triple = z.tuple([z.number(), z.number(), z.number()]);

const PatchRef = z
  .object({
    imageId: z.string().describe('dataset image id (e.g. the CUB file name); the image itself is not shipped'),
    classId: z.number().int().nonnegative(),
    width: z.number().int().positive().describe("the image's width in pixels"),
    height: z.number().int().positive().describe("the image's height in pixels"),
    patch: z
      .object({ row: z.number().int().nonnegative(), col: z.number().int().nonnegative() })
      .describe('feature-grid cell of the patch'),
    distance: z.number().nonnegative().describe('squared latent distance to the prototype'),
    box: BoxSchema.describe("95th-percentile activation box in the image's own pixels"),
    file: Rel.nullable().describe('picture of the patch (a crop at `box`); null for metadata-only neighbours'),
  })
  .meta({ id: 'PatchRef', description: 'a patch of a dataset image near a prototype' });

export const REVIEW_KINDS = ['background', 'duplicate', 'impure'] as const;
const ReviewFlag = z.object({ kind: z.enum(REVIEW_KINDS), reason: z.string().describe('what the finder saw') });

export const HISTORY_ACTIONS = ['drop', 'relabel', 'forbid', 'keep', 'repush'] as const;
const HistoryEntry = z.object({
  version: z.string().describe('the model version the edit made'),
  action: z.enum(HISTORY_ACTIONS),
  note: z.string(),
});

const PrototypeSchema = z.object({
  id: z.number().int().nonnegative().describe('its position in `prototypes`'),
  classId: z.number().int().nonnegative().describe('the class it belongs to'),
  weights: z.array(z.number()).describe('last-layer weights from this prototype to every class'),
  pruned: z.boolean().describe('dropped by pruning or an edit (its weights are 0)'),
  prunedReason: z.string().nullable().describe('why it was pruned (null when kept)'),
  source: z
    .object({
      imageId: z.string(),
      width: z.number().int().positive(),
      height: z.number().int().positive(),
      patch: z.object({ row: z.number().int().nonnegative(), col: z.number().int().nonnegative() }),
      pushDistance: z.number().nonnegative().describe('latent squared distance moved at push'),
      box: BoxSchema.describe("95th-percentile activation box in the image's own pixels"),
      patchBox: BoxSchema.describe('the feature-grid cell, in image pixels'),
      receptiveField: BoxSchema.nullable().describe("the cell's receptive field, in image pixels"),
    })
    .nullable()
    .describe('the training patch this prototype was projected onto (null before push)'),
  files: z
    .object({ crop: Rel, source: Rel, heatmap: Rel })
    .nullable()
    .describe('its pictures: the patch crop, the source image with the box, the activation heatmap'),
  nearest: z
    .object({ train: z.array(PatchRef), val: z.array(PatchRef) })
    .describe('its nearest training patches (other images, with crops) and validation patches'),
  purity: Unit.nullable().describe("share of the nearest training patches from the prototype's own class"),
  parts: z
    .object({
      images: z.number().int().nonnegative().describe('images of its class it was evaluated on'),
      consistent: z.boolean(),
      topPart: z.string().nullable(),
      topPartFrequency: Unit,
      stability: Unit,
      noPart: Unit.describe('share of those images where its region covers no annotated part (background)'),
    })
    .nullable()
    .optional()
    .describe("Huang et al.'s part metrics of this prototype (part-annotated data only)"),
  review: z
    .array(ReviewFlag)
    .optional()
    .describe('why a person may want to drop or forbid it (candidate finder); empty when nothing stands out'),
  history: z
    .array(HistoryEntry)
    .optional()
    .describe('what edits did to it, oldest first (absent in a bundle never edited)'),
});

const AccuracySchema = z
  .object({
    top1: Unit,
    top5: Unit,
    n: z.number().int().nonnegative().describe('images evaluated'),
  })
  .meta({ id: 'Accuracy', description: 'top-1 and top-5 accuracy (0-1) on n images' });

const CurvePoint = z.object({
  stage: z.string(),
  epoch: z.number().int().nonnegative(),
  loss: z.number().nullable(),
  trainAccuracy: z.number().nullable(),
  valTop1: z.number().nullable(),
  valTop5: z.number().nullable(),
});

const ExplanationSchema = z
  .object({
    purity: Unit.nullable().describe("mean share of the k nearest training patches from the prototype's class"),
    consistency: Unit.nullable().describe(
      'Huang et al. 2023, on part-annotated data (CUB); null where parts are unknown',
    ),
    stability: Unit.nullable().describe(
      'Huang et al. 2023, on part-annotated data (CUB); null where parts are unknown',
    ),
    partCoverage: Unit.nullable().describe("synthetic data: share of prototype boxes covering their class's true part"),
    measuredOn: z
      .object({ split: z.enum(['val', 'metrics']), images: z.number().int().nonnegative() })
      .nullable()
      .optional()
      .describe("which images consistency and stability were measured on ('metrics': held out for them alone)"),
    interval95: z
      .object({ consistency: z.tuple([Unit, Unit]), stability: z.tuple([Unit, Unit]) })
      .nullable()
      .optional()
      .describe('95% intervals of consistency and stability across prototypes (Wilson; mean ± 1.96 standard errors)'),
  })
  .meta({ id: 'Explanation', description: 'explanation quality metrics (0-1; null where not measured)' });

const Count = z.number().int().nonnegative();

/** One model version in an edit chain, with what it scored. */
const VersionSchema = z.object({
  id: z.string(),
  version: z.string(),
  createdAt: z.iso.datetime(),
  parent: z.string().nullable().describe('version it was edited from (null: trained)'),
  edits: z.object({ drop: Count, relabel: Count, forbid: Count, keep: Count }).describe('edits applied, by kind'),
  val: AccuracySchema.nullable(),
  explanation: ExplanationSchema,
  livePrototypes: z.number().int().nonnegative().describe('prototypes not pruned'),
});

const ModelFile = z
  .object({
    path: Rel.describe('path inside the bundle'),
    bytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .meta({ id: 'FileRecord', description: "a bundle file's path, size and sha256" });

export const ManifestSchema = z.object({
  schema: z.literal('protoatlas-bundle').describe('marks the file as a ProtoAtlas bundle manifest'),
  schemaVersion: z
    .literal(MANIFEST_SCHEMA_VERSION)
    .describe('bumped on any change an older reader would misread; a reader refuses other versions'),
  model: z
    .object({
      id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, ".", "_" and "-"'),
      version: z.string().min(1),
      createdAt: z.iso.datetime(),
      preset: z.string().describe('the training preset'),
      description: z.string(),
      parent: z
        .object({ id: z.string(), version: z.string() })
        .nullable()
        .optional()
        .describe(
          'the version this one was edited from (`npm run edit --workspace trainer`); ' +
            'absent or null for a trained model',
        ),
    })
    .describe('which model this is'),
  classes: z
    .array(z.object({ id: z.number().int().nonnegative(), key: z.string(), name: z.string() }))
    .min(1)
    .describe('the classes, in logit order: id (its position), dataset key and display name'),
  preprocessing: z
    .object({
      size: z.number().int().positive(),
      mean: Triple,
      std: Triple,
      resize: z.literal('stretch').describe('how the photo becomes size x size: stretched, ignoring aspect'),
      layout: z
        .enum(['NHWC', 'NCHW'])
        .describe('tensor layout the trainer feeds; the ONNX export documents its own input'),
    })
    .describe('how a photo becomes the model input (RGB in 0-1, then (x - mean) / std)'),
  featureGrid: z
    .object({
      height: z.number().int().positive(),
      width: z.number().int().positive(),
      channels: z.number().int().positive(),
    })
    .describe("the backbone's feature map: one patch per cell"),
  prototypeDim: z.number().int().positive().describe('channels of the latent space the prototypes live in'),
  similarityEpsilon: z.number().positive().describe('eps of the similarity log((d+1)/(d+eps))'),
  receptiveField: z
    .object({ size: z.number().positive(), stride: z.number().positive(), start: z.number() })
    .nullable()
    .describe("a feature cell's receptive field in input pixels (null when unknown)"),
  prototypes: z.array(PrototypeSchema).min(1).describe('every prototype, pruned ones included, by id'),
  files: z
    .object({
      trainerModel: z
        .object({ json: Rel, weights: Rel })
        .describe("the trainer's own model (model.json + weights.bin): what `explain` runs"),
      backbone: z.array(ModelFile).describe('backbone weights shipped with the bundle (frozen backbones), if any'),
      onnx: z
        .object({
          fp32: ModelFile.nullable(),
          int8: ModelFile.nullable().describe('the deployed model (int8 weights, float compute)'),
          inputs: z.array(
            z.object({ name: z.string(), shape: z.array(z.union([z.number().int(), z.string()])), layout: z.string() }),
          ),
          outputs: z.array(z.object({ name: z.string(), shape: z.array(z.union([z.number().int(), z.string()])) })),
        })
        .nullable()
        .describe('exported ONNX models, when the export has run'),
      // Absent in bundles built before it was added: they still load, unverified.
      integrity: z
        .array(ModelFile)
        .optional()
        .describe(
          'size and sha256 of every file in the bundle but manifest.json, sorted by path: what ' +
            '`npm run bundle --workspace trainer -- --verify` and the edge check',
        ),
    })
    .describe('the model files'),
  metrics: z
    .object({
      val: AccuracySchema.nullable().describe('validation accuracy (held out from the training split)'),
      test: AccuracySchema.nullable().describe('test accuracy, when the dataset has a test split'),
      baseline: z
        .object({
          top1: Unit,
          top5: Unit,
          // Absent in bundles built before they were recorded.
          method: z
            .string()
            .optional()
            .describe(
              'what the baseline is: the frozen backbone with a linear softmax, or the backbone fine-tuned with one',
            ),
          paired: z
            .object({
              n: z.number().int().positive(),
              difference: z.number().describe("the model's top-1 minus the baseline's, on the same images"),
              interval95: z.tuple([z.number(), z.number()]).describe('95% interval of the difference'),
              onlyModel: z.number().int().nonnegative().describe('images only the model gets right'),
              onlyBaseline: z.number().int().nonnegative().describe('images only the baseline gets right'),
            })
            .optional()
            .describe('the paired comparison, when both were scored per image on the same validation images'),
        })
        .nullable()
        .describe('the same backbone with global average pooling and a linear layer, on validation'),
      explanation: ExplanationSchema,
      pruning: z
        .object({
          k: z.number().int().positive(),
          threshold: z.number().int().nonnegative(),
          applied: z.boolean().describe("whether the pruned model was kept ('auto' keeps it if top-1 holds)"),
          pruned: z.number().int().nonnegative(),
          before: AccuracySchema.nullable(),
          after: AccuracySchema.nullable(),
        })
        .nullable()
        .describe('the pruning report (paper Sec. 2.5)'),
      wrongClassNearZero: Unit.nullable().describe('share of wrong-class last-layer weights with |w| < 1e-3'),
      wrongClassZero: Unit.nullable()
        .optional()
        .describe("wrong-class last-layer weights that are exactly 0 (stage 3's L1 with the proximal solver)"),
    })
    .describe('what the model scored'),
  curves: z.array(CurvePoint).describe('training curves: one point per epoch of every stage'),
  backbone: z
    .object({
      kind: z.string(),
      description: z.string(),
      source: z.string(),
      sha256: z.string().nullable(),
      licence: z.string(),
    })
    .describe('backbone provenance, with its licence'),
  dataset: z
    .object({
      layout: z.string(),
      name: z.string(),
      licence: z.string(),
      train: z.number().int(),
      val: z.number().int(),
      test: z.number().int(),
    })
    .describe('dataset provenance and split sizes, with its licence'),
  lineage: z
    .array(VersionSchema)
    .optional()
    .describe('the version chain, oldest first, ending with this version (absent for a model never edited)'),
});

export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestFileRecord = z.infer<typeof ModelFile>;
export type ManifestPrototype = Manifest['prototypes'][number];
export type ManifestPatchRef = z.infer<typeof PatchRef>;
export type ManifestVersion = z.infer<typeof VersionSchema>;
export type ReviewKind = (typeof REVIEW_KINDS)[number];
export type HistoryAction = (typeof HISTORY_ACTIONS)[number];

/** A bundle's manifest failed validation; the message names the offending fields. */
export class ManifestError extends Error {
  readonly issues: { path: string; message: string }[];
  constructor(source: string, issues: { path: string; message: string }[]) {
    const shown = issues.slice(0, 5).map((i) => `  ${i.path || '(root)'}: ${i.message}`);
    const more = issues.length > 5 ? `\n  ... and ${issues.length - 5} more` : '';
    super(
      `${source} is not a valid ProtoAtlas bundle manifest:\n${shown.join('\n')}${more}\nRebuild the bundle with this version of ProtoAtlas (npm run bundle --workspace trainer -- <run dir>).`,
    );
    this.name = 'ManifestError';
    this.issues = issues;
  }
}

/**
 * Validate a manifest (already JSON-parsed). Beyond the schema: every class and
 * prototype id is its index, and weight rows have one weight per class.
 */
export function parseManifest(raw: unknown, source = MANIFEST_FILE): Manifest {
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) {
    throw new ManifestError(
      source,
      r.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  }
  const m = r.data;
  const issues: { path: string; message: string }[] = [];
  const C = m.classes.length;
  m.classes.forEach((c, i) => {
    if (c.id !== i) issues.push({ path: `classes.${i}.id`, message: `is ${c.id}, expected ${i} (ids are positions)` });
  });
  m.prototypes.forEach((p, i) => {
    if (p.id !== i)
      issues.push({ path: `prototypes.${i}.id`, message: `is ${p.id}, expected ${i} (ids are positions)` });
    if (p.classId >= C)
      issues.push({ path: `prototypes.${i}.classId`, message: `${p.classId} is not a class (there are ${C})` });
    if (p.weights.length !== C)
      issues.push({
        path: `prototypes.${i}.weights`,
        message: `has ${p.weights.length} weights, expected one per class (${C})`,
      });
    if (p.source && (p.source.patch.row >= m.featureGrid.height || p.source.patch.col >= m.featureGrid.width)) {
      issues.push({
        path: `prototypes.${i}.source.patch`,
        message: `lies outside the ${m.featureGrid.height}x${m.featureGrid.width} feature grid`,
      });
    }
  });
  issues.push(...integrityIssues(m));
  if (issues.length) throw new ManifestError(source, issues);
  return m;
}

/** Every file the manifest names (models, pictures), for the integrity list to cover. */
export function referencedFiles(m: Manifest): string[] {
  const out = new Set<string>();
  const { onnx, trainerModel, backbone } = m.files;
  for (const f of [onnx?.fp32, onnx?.int8, ...backbone]) if (f) out.add(f.path);
  out.add(trainerModel.json).add(trainerModel.weights);
  for (const p of m.prototypes) {
    if (p.files) out.add(p.files.crop).add(p.files.source).add(p.files.heatmap);
    for (const n of [...p.nearest.train, ...p.nearest.val]) if (n.file) out.add(n.file);
  }
  return [...out].sort();
}

/** The integrity list, when present, must cover every named file and agree with the model records. */
function integrityIssues(m: Manifest): { path: string; message: string }[] {
  const list = m.files.integrity;
  if (!list) return [];
  const issues: { path: string; message: string }[] = [];
  const issue = (message: string) => issues.push({ path: 'files.integrity', message });
  const byPath = new Map(list.map((f) => [f.path, f]));
  if (byPath.size !== list.length) issue('lists a path twice');
  for (const path of referencedFiles(m)) {
    if (!byPath.has(path)) issue(`does not list ${path}, which the manifest names`);
  }
  const { onnx, backbone } = m.files;
  for (const f of [onnx?.fp32, onnx?.int8, ...backbone]) {
    const listed = f && byPath.get(f.path);
    if (listed && (listed.sha256 !== f.sha256 || listed.bytes !== f.bytes)) {
      issue(`${f.path} is listed with a different size or sha256 than its model record`);
    }
  }
  return issues;
}

/** The last layer as one row-major [prototypes x classes] array, for `explain`. */
export function manifestLastLayer(m: Manifest): Float32Array {
  const C = m.classes.length;
  const out = new Float32Array(m.prototypes.length * C);
  m.prototypes.forEach((p, j) => out.set(p.weights, j * C));
  return out;
}

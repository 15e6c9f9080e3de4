import { z } from 'zod';

/** Bumped on any change that an older reader would misread. */
export const MANIFEST_SCHEMA_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

const BoxSchema = z.object({
  x: z.number().int().nonnegative(),
  y: z.number().int().nonnegative(),
  w: z.number().int().positive(),
  h: z.number().int().positive(),
});
const Rel = z
  .string()
  .min(1)
  .refine(
    (p) => !p.startsWith('/') && !p.split('/').includes('..') && !p.includes('\\'),
    'must be a relative path inside the bundle (no "..", no leading "/")',
  );
const Unit = z.number().min(0).max(1);
const Triple = z.tuple([z.number(), z.number(), z.number()]);

const PatchRef = z.object({
  /** Dataset image id (e.g. the CUB file name); the image itself is not shipped. */
  imageId: z.string(),
  classId: z.number().int().nonnegative(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  patch: z.object({ row: z.number().int().nonnegative(), col: z.number().int().nonnegative() }),
  distance: z.number().nonnegative(),
  /** 95th-percentile activation box in the image's own pixels. */
  box: BoxSchema,
  /** Picture of the patch (a crop at `box`); absent for metadata-only neighbours. */
  file: Rel.nullable(),
});

export const REVIEW_KINDS = ['background', 'duplicate', 'impure'] as const;
const ReviewFlag = z.object({ kind: z.enum(REVIEW_KINDS), reason: z.string() });

export const HISTORY_ACTIONS = ['drop', 'relabel', 'forbid', 'keep', 'repush'] as const;
const HistoryEntry = z.object({ version: z.string(), action: z.enum(HISTORY_ACTIONS), note: z.string() });

const PrototypeSchema = z.object({
  id: z.number().int().nonnegative(),
  classId: z.number().int().nonnegative(),
  /** Last-layer weights from this prototype to every class. */
  weights: z.array(z.number()),
  pruned: z.boolean(),
  /** Why it was pruned (null when kept). */
  prunedReason: z.string().nullable(),
  /** The training patch this prototype was projected onto (null before push). */
  source: z
    .object({
      imageId: z.string(),
      width: z.number().int().positive(),
      height: z.number().int().positive(),
      patch: z.object({ row: z.number().int().nonnegative(), col: z.number().int().nonnegative() }),
      /** Latent squared distance moved at push. */
      pushDistance: z.number().nonnegative(),
      box: BoxSchema,
      patchBox: BoxSchema,
      receptiveField: BoxSchema.nullable(),
    })
    .nullable(),
  files: z.object({ crop: Rel, source: Rel, heatmap: Rel }).nullable(),
  nearest: z.object({ train: z.array(PatchRef), val: z.array(PatchRef) }),
  /** Share of the nearest training patches from the prototype's own class. */
  purity: Unit.nullable(),
  /** Huang et al.'s part metrics of this prototype (part-annotated data only). */
  parts: z
    .object({
      /** Images of its class it was evaluated on. */
      images: z.number().int().nonnegative(),
      consistent: z.boolean(),
      topPart: z.string().nullable(),
      topPartFrequency: Unit,
      stability: Unit,
      /** Share of those images where its region covers no annotated part (background). */
      noPart: Unit,
    })
    .nullable()
    .optional(),
  /** Why a person may want to drop or forbid it (candidate finder); empty when nothing stands out. */
  review: z.array(ReviewFlag).optional(),
  /** What edits did to it, oldest first (absent in a bundle never edited). */
  history: z.array(HistoryEntry).optional(),
});

const AccuracySchema = z.object({ top1: Unit, top5: Unit, n: z.number().int().nonnegative() });

const CurvePoint = z.object({
  stage: z.string(),
  epoch: z.number().int().nonnegative(),
  loss: z.number().nullable(),
  trainAccuracy: z.number().nullable(),
  valTop1: z.number().nullable(),
  valTop5: z.number().nullable(),
});

const ExplanationSchema = z.object({
  /** Mean share of the k nearest training patches from the prototype's class. */
  purity: Unit.nullable(),
  /** Huang et al. 2023, on part-annotated data (CUB); null where parts are unknown. */
  consistency: Unit.nullable(),
  stability: Unit.nullable(),
  /** Synthetic data: share of prototype boxes covering their class's true part. */
  partCoverage: Unit.nullable(),
  /** Which images consistency and stability were measured on ('metrics': held out for them alone). */
  measuredOn: z
    .object({ split: z.enum(['val', 'metrics']), images: z.number().int().nonnegative() })
    .nullable()
    .optional(),
  /** 95% intervals of consistency and stability across prototypes (Wilson; mean ± 1.96 standard errors). */
  interval95: z
    .object({ consistency: z.tuple([Unit, Unit]), stability: z.tuple([Unit, Unit]) })
    .nullable()
    .optional(),
});

const Count = z.number().int().nonnegative();

/** One model version in an edit chain, with what it scored. */
const VersionSchema = z.object({
  id: z.string(),
  version: z.string(),
  createdAt: z.iso.datetime(),
  /** Version it was edited from (null: trained). */
  parent: z.string().nullable(),
  edits: z.object({ drop: Count, relabel: Count, forbid: Count, keep: Count }),
  val: AccuracySchema.nullable(),
  explanation: ExplanationSchema,
  livePrototypes: z.number().int().nonnegative(),
});

const ModelFile = z.object({
  path: Rel,
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const ManifestSchema = z.object({
  schema: z.literal('protoatlas-bundle'),
  schemaVersion: z.literal(MANIFEST_SCHEMA_VERSION),
  model: z.object({
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, ".", "_" and "-"'),
    version: z.string().min(1),
    createdAt: z.iso.datetime(),
    preset: z.string(),
    description: z.string(),
    /** The version this one was edited from (`npm run edit`); absent or null for a trained model. */
    parent: z.object({ id: z.string(), version: z.string() }).nullable().optional(),
  }),
  classes: z.array(z.object({ id: z.number().int().nonnegative(), key: z.string(), name: z.string() })).min(1),
  preprocessing: z.object({
    size: z.number().int().positive(),
    mean: Triple,
    std: Triple,
    /** How the photo becomes size x size: stretched, ignoring aspect (as in training). */
    resize: z.literal('stretch'),
    /** Tensor layout the trainer feeds; the ONNX export documents its own input. */
    layout: z.enum(['NHWC', 'NCHW']),
  }),
  featureGrid: z.object({
    height: z.number().int().positive(),
    width: z.number().int().positive(),
    channels: z.number().int().positive(),
  }),
  prototypeDim: z.number().int().positive(),
  similarityEpsilon: z.number().positive(),
  receptiveField: z
    .object({ size: z.number().positive(), stride: z.number().positive(), start: z.number() })
    .nullable(),
  prototypes: z.array(PrototypeSchema).min(1),
  files: z.object({
    /** The trainer's own model (model.json + weights.bin): what `explain` runs. */
    trainerModel: z.object({ json: Rel, weights: Rel }),
    /** Backbone weights shipped with the bundle (frozen backbones), if any. */
    backbone: z.array(ModelFile),
    /** Exported ONNX models, when the export has run. */
    onnx: z
      .object({
        fp32: ModelFile.nullable(),
        int8: ModelFile.nullable(),
        inputs: z.array(
          z.object({ name: z.string(), shape: z.array(z.union([z.number().int(), z.string()])), layout: z.string() }),
        ),
        outputs: z.array(z.object({ name: z.string(), shape: z.array(z.union([z.number().int(), z.string()])) })),
      })
      .nullable(),
    /**
     * Size and sha256 of every file in the bundle but manifest.json, sorted by
     * path: what `npm run bundle -- --verify` and the edge check. Absent in
     * bundles built before it was added (they still load, unverified).
     */
    integrity: z.array(ModelFile).optional(),
  }),
  metrics: z.object({
    val: AccuracySchema.nullable(),
    test: AccuracySchema.nullable(),
    baseline: z.object({ top1: Unit, top5: Unit }).nullable(),
    explanation: ExplanationSchema,
    pruning: z
      .object({
        k: z.number().int().positive(),
        threshold: z.number().int().nonnegative(),
        applied: z.boolean(),
        pruned: z.number().int().nonnegative(),
        before: AccuracySchema.nullable(),
        after: AccuracySchema.nullable(),
      })
      .nullable(),
    wrongClassNearZero: Unit.nullable(),
    /** Wrong-class last-layer weights that are exactly 0 (stage 3's L1 with the proximal solver). */
    wrongClassZero: Unit.nullable().optional(),
  }),
  curves: z.array(CurvePoint),
  backbone: z.object({
    kind: z.string(),
    description: z.string(),
    source: z.string(),
    sha256: z.string().nullable(),
    licence: z.string(),
  }),
  dataset: z.object({
    layout: z.string(),
    name: z.string(),
    licence: z.string(),
    train: z.number().int(),
    val: z.number().int(),
    test: z.number().int(),
  }),
  /** The version chain, oldest first, ending with this version (absent for a model never edited). */
  lineage: z.array(VersionSchema).optional(),
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

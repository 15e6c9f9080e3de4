/**
 * Request and response schemas (zod, with OpenAPI metadata): they validate the
 * query and generate /openapi.json, so the document cannot drift from the code.
 */
import { z } from '@hono/zod-openapi';
import { ERROR_CODES } from './errors.ts';

export const MAX_TOP = 10;
export const MAX_EVIDENCE = 20;

/** A query integer: digits only, so "3.5", "1e1" or "" are refused rather than coerced. */
const queryInt = (name: string, min: number, max: number, def: number, description: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return def;
      const n = /^\d{1,3}$/.test(v) ? Number(v) : NaN;
      if (!(n >= min && n <= max)) {
        ctx.addIssue({ code: 'custom', message: `${name} must be an integer from ${min} to ${max}` });
        return z.NEVER;
      }
      return n;
    })
    .openapi({ param: { name, in: 'query' }, type: 'integer', minimum: min, maximum: max, default: def, description });

export const ClassifyQuery = z.object({
  top: queryInt('top', 1, MAX_TOP, 3, 'How many classes to return, most probable first.'),
  evidence: queryInt('evidence', 0, MAX_EVIDENCE, 3, 'Prototypes shown per class, most points first.'),
});

export const BoxSchema = z
  .object({ x: z.number().int(), y: z.number().int(), w: z.number().int(), h: z.number().int() })
  .openapi('Box', {
    description: "Left, top, width, height in the input image's own pixels (after EXIF orientation).",
  });

export const EvidenceSchema = z
  .object({
    prototypeId: z.number().int().openapi({ description: 'The prototype (GET /prototypes/{id}).' }),
    prototypeClassId: z.number().int().openapi({ description: 'The class the prototype belongs to.' }),
    similarity: z.number().openapi({ description: 'log((d+1)/(d+eps)) at the best-matching patch.' }),
    weight: z.number().openapi({ description: 'Last-layer weight from the prototype to this class.' }),
    contribution: z.number().openapi({
      description: 'similarity x weight: points given to this class. Over all prototypes they sum to the logit.',
    }),
    box: BoxSchema.openapi({ description: 'Where in the photo the prototype matched best.' }),
    prototypeImageUrl: z.string().nullable().openapi({ description: "The prototype's patch picture." }),
    sourceImageUrl: z.string().nullable().openapi({ description: 'The training image it comes from, boxed.' }),
    heatmapImageUrl: z.string().nullable().openapi({ description: 'Its activation map over that image.' }),
  })
  .openapi('Evidence');

export const PredictionSchema = z
  .object({
    classId: z.number().int(),
    label: z.string().openapi({ description: 'Display name of the class.' }),
    key: z.string().openapi({ description: "The class's key in the dataset." }),
    probability: z.number().openapi({ description: 'Softmax of the logits over all classes.' }),
    logit: z.number(),
    evidence: z.array(EvidenceSchema).openapi({ description: 'The prototypes that gave the most points.' }),
  })
  .openapi('Prediction');

export const ClassifyResponse = z
  .object({
    requestId: z.string().openapi({ description: 'Also in the X-Request-Id header; quote it in reports.' }),
    model: z
      .object({ id: z.string(), version: z.string(), precision: z.enum(['fp32', 'int8']) })
      .openapi({ description: 'The model that answered and the ONNX file it ran.' }),
    image: z
      .object({
        format: z.enum(['jpeg', 'png', 'webp']),
        width: z.number().int(),
        height: z.number().int(),
        orientation: z.number().int(),
        colorProfile: z
          .object({
            description: z.string().nullable(),
            colorSpace: z.string(),
            applied: z.boolean(),
          })
          .optional()
          .openapi({
            description:
              'The embedded ICC profile, when the file has one. Not applied: the pixels are read as sRGB (CMYK ' +
              "through the trainer's built-in CMYK profile), whereas training converts through an embedded profile.",
          }),
      })
      .openapi({ description: 'The photo as decoded: size after EXIF orientation (1-8, 1 = as stored).' }),
    predictions: z.array(PredictionSchema).openapi({ description: 'The top classes, most probable first.' }),
    timings: z
      .object({
        upload: z.number().openapi({ description: 'Reading the body and checking the image header.' }),
        decode: z.number(),
        preprocess: z.number(),
        inference: z.number(),
        explain: z.number(),
        total: z.number(),
      })
      .openapi({ description: 'Server-side milliseconds.' }),
  })
  .openapi('ClassifyResponse');

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z
        .enum(Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...(keyof typeof ERROR_CODES)[]])
        .openapi({ description: 'Stable machine-readable cause.' }),
      message: z.string().openapi({ description: 'What went wrong and how to fix it.' }),
      requestId: z.string().optional(),
    }),
  })
  .openapi('Error');

export const HealthResponse = z
  .object({
    ok: z.boolean().openapi({ description: 'Whether the service can classify.' }),
    model: z.object({ id: z.string(), version: z.string() }).nullable(),
    wasmMemoryBytes: z.number().int().nullable().openapi({
      description: "onnxruntime's wasm linear memory in this isolate (null before the first classification).",
    }),
    error: z.string().nullable().openapi({
      description:
        'Why the service cannot classify (no bundle, or a model that does not match the manifest); null when ok.',
    }),
    jpegDecoderPeakBytes: z.number().int().nullable().openapi({
      description: "The largest the JPEG decoder's wasm memory has been (null before the first JPEG).",
    }),
    webpDecoderPeakBytes: z.number().int().nullable().openapi({
      description: "The largest the WebP decoder's wasm memory has been (null before the first WebP).",
    }),
  })
  .openapi('Health');

const AccuracySchema = z.object({ top1: z.number(), top5: z.number(), n: z.number().int() }).nullable();

const Int = z.number().int();

export const ModelCardResponse = z
  .object({
    id: z.string(),
    version: z.string(),
    parent: z.object({ id: z.string(), version: z.string() }).nullable().openapi({
      description: 'The version this one was edited from (npm run edit --workspace trainer); null for a trained model',
    }),
    versions: z.array(
      z.object({
        id: z.string(),
        version: z.string(),
        parent: z.string().nullable(),
        createdAt: z.string(),
        edits: z.object({ drop: Int, relabel: Int, forbid: Int, keep: Int }),
        validation: AccuracySchema,
      }),
    ),
    description: z.string(),
    preset: z.string(),
    createdAt: z.string(),
    classes: z.array(
      z.object({ id: z.number().int(), key: z.string(), name: z.string(), prototypes: z.number().int() }),
    ),
    prototypes: z
      .object({ total: z.number().int(), live: z.number().int(), pruned: z.number().int() })
      .openapi({ description: 'Prototype counts; live = not pruned.' }),
    input: z
      .object({ size: z.number().int(), resize: z.string(), layout: z.string() })
      .openapi({ description: "The model's input: size x size pixels, how a photo is resized, tensor layout." }),
    accuracy: z.object({
      validation: AccuracySchema,
      test: AccuracySchema,
      baseline: z
        .object({
          top1: z.number(),
          top5: z.number(),
          method: z
            .string()
            .optional()
            .openapi({ description: 'What the baseline is (frozen or fine-tuned backbone).' }),
          paired: z
            .object({
              n: z.number().int(),
              difference: z.number(),
              interval95: z.tuple([z.number(), z.number()]),
              onlyModel: z.number().int(),
              onlyBaseline: z.number().int(),
            })
            .optional()
            .openapi({
              description:
                "The model's top-1 minus the baseline's on the same validation images, with its 95% interval and " +
                'the images only one of the two gets right.',
            }),
        })
        .nullable()
        .openapi({ description: 'The same backbone with global average pooling and a linear softmax, on validation.' }),
    }),
    explanation: z.object({
      purity: z.number().nullable(),
      consistency: z.number().nullable(),
      stability: z.number().nullable(),
      partCoverage: z.number().nullable(),
    }),
    runtime: z
      .object({ engine: z.string(), precision: z.enum(['fp32', 'int8']), bytes: z.number().int(), sha256: z.string() })
      .nullable(),
    backbone: z.object({ kind: z.string(), description: z.string(), licence: z.string() }),
    dataset: z.object({ name: z.string(), licence: z.string() }),
    links: z
      .object({ manifest: z.string().nullable() })
      .openapi({ description: "URL of the bundle's manifest.json (docs/bundle.md)." }),
  })
  .openapi('ModelCard');

export const PrototypeParams = z.object({
  id: z
    .string()
    .regex(/^\d{1,6}$/, 'id must be a prototype number')
    .openapi({ param: { name: 'id', in: 'path' }, example: '0' }),
});

export const PrototypeResponse = z
  .object({
    id: z.number().int(),
    classId: z.number().int(),
    className: z.string(),
    pruned: z.boolean(),
    prunedReason: z.string().nullable(),
    weight: z.number().openapi({ description: 'Last-layer weight to its own class.' }),
    weights: z.array(z.number()).openapi({ description: 'Last-layer weights to every class, by class id.' }),
    purity: z.number().nullable().openapi({ description: 'Share of its nearest training patches from its class.' }),
    source: z
      .object({
        imageId: z.string(),
        width: z.number().int(),
        height: z.number().int(),
        box: BoxSchema,
        patch: z.object({ row: z.number().int(), col: z.number().int() }),
      })
      .nullable(),
    images: z.object({
      prototype: z.string().nullable(),
      source: z.string().nullable(),
      heatmap: z.string().nullable(),
    }),
    nearest: z
      .array(
        z.object({
          imageId: z.string(),
          classId: z.number().int(),
          distance: z.number(),
          box: BoxSchema,
          image: z.string().nullable(),
        }),
      )
      .openapi({ description: 'Its nearest training patches, nearest first.' }),
    history: z.array(z.object({ version: z.string(), action: z.string(), note: z.string() })).openapi({
      description: 'What edits did to it (npm run edit --workspace trainer), oldest first; empty if never edited.',
    }),
    review: z.array(z.object({ kind: z.string(), reason: z.string() })).openapi({
      description: 'Why the candidate finder suggests reviewing it; empty when nothing stands out.',
    }),
  })
  .openapi('Prototype');

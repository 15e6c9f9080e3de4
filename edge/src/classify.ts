/**
 * POST /classify: upload -> header checks -> decode -> preprocess -> model ->
 * explanation. Every refusal is an ApiError with a stable code; the checks run
 * cheapest first, and the image size is checked from the header before any
 * pixel is decoded.
 */
import { readIccProfile, readOrientation } from '@protoatlas/shared';
import type { Context } from 'hono';
import { readUpload } from './body.ts';
import type { EdgeConfig } from './config.ts';
import { RequestBudget } from './budget.ts';
import { ApiError } from './errors.ts';
import { explainPrediction } from './explain-response.ts';
import { toModelInput } from './preprocess.ts';
import { DEFAULT_RETRY_AFTER_SECONDS, type RateLimiter } from './rate-limit.ts';
import type { Runtime } from './runtime.ts';
import { ClassifyQuery } from './schemas.ts';
import { readUploadHeader } from './upload-header.ts';

export interface ClassifyDeps {
  runtime: Runtime;
  config: EdgeConfig;
  rateLimiter: RateLimiter | null;
  clientKey: (c: Context) => string;
  /** The clock of the time budget (tests give their own). */
  now?: () => number;
}

const ms = (a: number, b: number) => Math.round((b - a) * 100) / 100;

export async function classify(
  c: Context<{ Variables: { requestId: string } }>,
  deps: ClassifyDeps,
): Promise<Response> {
  const t0 = performance.now();
  const budget = new RequestBudget(deps.config.requestBudgetMs, deps.now);
  const q = ClassifyQuery.safeParse(c.req.query());
  if (!q.success) throw new ApiError('bad_query', q.error.issues.map((i) => i.message).join('; '));
  const limit = deps.rateLimiter ? await deps.rateLimiter.limit({ key: deps.clientKey(c) }) : null;
  if (limit && !limit.success) {
    const wait = limit.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS;
    const message = `too many classify requests: try again in ${wait} s`;
    throw new ApiError('rate_limited', message, { 'retry-after': String(wait) });
  }
  const { config } = deps;
  const upload = await budget.within(readUpload(c.req.raw, config.maxBodyBytes), 'reading the upload');
  const bytes = upload.bytes;
  const head = readUploadHeader(bytes, { checkComplete: false });
  if (head.width * head.height > config.maxPixels) {
    throw new ApiError(
      'image_too_large',
      `the image is ${head.width}x${head.height} (${((head.width * head.height) / 1e6).toFixed(1)} megapixels); the limit is ${config.maxPixels / 1e6} megapixels`,
    );
  }
  if (Math.min(head.width, head.height) < config.minSide) {
    throw new ApiError(
      'image_too_small',
      `the image is ${head.width}x${head.height}; both sides must be at least ${config.minSide} px`,
    );
  }
  readUploadHeader(bytes, { checkComplete: true });
  const orientation = readOrientation(bytes);
  const profile = await readIccProfile(bytes);
  const tUpload = performance.now();

  const { runtime } = deps;
  const ready = Promise.all([runtime.getBundle(), runtime.getModel(), runtime.getDecoder()]);
  const [bundle, model, decoder] = await budget.within(ready, 'loading the model');
  budget.check('decoding');
  const t1 = performance.now();
  const img = await decoder.decode(head.format, bytes, head, model.size);
  const t2 = performance.now();
  budget.check('preprocessing');
  const input = toModelInput(img, head, orientation, model.size);
  const t3 = performance.now();
  const out = await budget.within(
    model.run(input.tensor, () => budget.check('inference')),
    'waiting for the model',
  );
  const t4 = performance.now();
  const origin = new URL(c.req.url).origin;
  const predictions = explainPrediction(bundle, out, input, { top: q.data.top, evidence: q.data.evidence, origin });
  const t5 = performance.now();
  const m = bundle.manifest.model;
  c.header('cache-control', 'no-store');
  return c.json({
    requestId: c.get('requestId'),
    model: { id: m.id, version: m.version, precision: model.file.precision },
    image: {
      format: head.format,
      width: input.width,
      height: input.height,
      orientation,
      ...(profile && {
        colorProfile: { description: profile.description, colorSpace: profile.colorSpace, applied: false },
      }),
    },
    predictions,
    timings: {
      upload: ms(t0, tUpload),
      decode: ms(t1, t2),
      preprocess: ms(t2, t3),
      inference: ms(t3, t4),
      explain: ms(t4, t5),
      total: ms(t0, t5),
    },
  });
}

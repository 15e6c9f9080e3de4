/**
 * POST /classify: upload -> header checks -> decode -> preprocess -> model ->
 * explanation. Every refusal is an ApiError with a stable code; the checks run
 * cheapest first, and the image size is checked from the header before any
 * pixel is decoded.
 */
import { readOrientation } from '@protoatlas/shared';
import type { Context } from 'hono';
import { readUpload } from './body.ts';
import type { EdgeConfig } from './config.ts';
import { ApiError } from './errors.ts';
import { explainPrediction } from './explain-response.ts';
import { readImageHeader } from './image-header.ts';
import { toModelInput } from './preprocess.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { Runtime } from './runtime.ts';
import { ClassifyQuery } from './schemas.ts';

export interface ClassifyDeps {
  runtime: Runtime;
  config: EdgeConfig;
  rateLimiter: RateLimiter | null;
  clientKey: (c: Context) => string;
}

const ms = (a: number, b: number) => Math.round((b - a) * 100) / 100;

export async function classify(c: Context<{ Variables: { requestId: string } }>, deps: ClassifyDeps): Promise<Response> {
  const t0 = performance.now();
  const q = ClassifyQuery.safeParse(c.req.query());
  if (!q.success) throw new ApiError('bad_query', q.error.issues.map((i) => i.message).join('; '));
  if (deps.rateLimiter && !(await deps.rateLimiter.limit({ key: deps.clientKey(c) })).success) {
    throw new ApiError('rate_limited', 'too many classify requests: try again in a minute', { 'retry-after': '60' });
  }
  const { config } = deps;
  const upload = await readUpload(c.req.raw, config.maxBodyBytes);
  const bytes = upload.bytes;
  const head = readImageHeader(bytes, { checkComplete: false });
  if (head.width * head.height > config.maxPixels) {
    throw new ApiError('image_too_large', `the image is ${head.width}x${head.height} (${((head.width * head.height) / 1e6).toFixed(1)} megapixels); the limit is ${config.maxPixels / 1e6} megapixels`);
  }
  if (Math.min(head.width, head.height) < config.minSide) {
    throw new ApiError('image_too_small', `the image is ${head.width}x${head.height}; both sides must be at least ${config.minSide} px`);
  }
  readImageHeader(bytes, { checkComplete: true });
  const orientation = readOrientation(bytes);

  const [bundle, model, decoder] = await Promise.all([deps.runtime.getBundle(), deps.runtime.getModel(), deps.runtime.getDecoder()]);
  const t1 = performance.now();
  const img = await decoder.decode(head.format, bytes, head);
  const t2 = performance.now();
  const input = toModelInput(img, orientation, model.size);
  const t3 = performance.now();
  const out = await model.run(input.tensor);
  const t4 = performance.now();
  const origin = new URL(c.req.url).origin;
  const predictions = explainPrediction(bundle, out, input, { top: q.data.top, evidence: q.data.evidence, origin });
  const t5 = performance.now();
  const m = bundle.manifest.model;
  c.header('cache-control', 'no-store');
  return c.json({
    requestId: c.get('requestId'),
    model: { id: m.id, version: m.version, precision: model.file.precision },
    image: { format: head.format, width: input.width, height: input.height, orientation },
    predictions,
    timings: { decode: ms(t1, t2), preprocess: ms(t2, t3), inference: ms(t3, t4), explain: ms(t4, t5), total: ms(t0, t5) },
  });
}

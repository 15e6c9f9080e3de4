/**
 * Route definitions for the OpenAPI document. POST /classify is registered
 * for documentation only: its body (raw image or multipart) is read by
 * body.ts with a size cap, never by a generic form validator.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { IMAGE_FIELD, IMAGE_TYPES, MULTIPART } from './body.ts';
import {
  ClassifyQuery,
  ClassifyResponse,
  ErrorSchema,
  HealthResponse,
  ModelCardResponse,
  PrototypeParams,
  PrototypeResponse,
} from './schemas.ts';

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});
const error = (description: string) => json(ErrorSchema, description);

export const healthRoute = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'Readiness: the model the service answers with, checked against the bundle manifest',
  responses: {
    200: json(HealthResponse, 'Ready'),
    503: json(HealthResponse, 'Not ready: no bundle, or its model file does not match the manifest (see error)'),
  },
});

export const modelRoute = createRoute({
  method: 'get',
  path: '/model',
  summary: 'Model card: classes, prototypes, accuracy next to the baseline, version',
  responses: { 200: json(ModelCardResponse, 'The model card'), 500: error('The bundle could not be loaded') },
});

export const prototypeRoute = createRoute({
  method: 'get',
  path: '/prototypes/{id}',
  summary: 'One prototype: its class, weights, source box and pictures',
  request: { params: PrototypeParams },
  responses: { 200: json(PrototypeResponse, 'The prototype'), 404: error('No such prototype') },
});

const binary = z.string().openapi({ type: 'string', format: 'binary' });

export const classifyRoute = createRoute({
  method: 'post',
  path: '/classify',
  summary: 'Identify the bird in a photo, with the prototypes that explain the answer',
  request: {
    query: ClassifyQuery,
    body: {
      required: true,
      description: `Raw image bytes (at most 10 MB, 40 megapixels, 16 px a side), or ${MULTIPART} with a file field "${IMAGE_FIELD}".`,
      content: {
        ...Object.fromEntries(IMAGE_TYPES.map((t) => [t, { schema: binary }])),
        [MULTIPART]: { schema: z.object({ [IMAGE_FIELD]: binary }) },
      },
    },
  },
  responses: {
    200: json(ClassifyResponse, 'Top classes with their evidence'),
    400: error('bad_query, bad_multipart or missing_image_field'),
    411: error('body_missing: no body, or an empty one'),
    413: error('body_too_large: over the body limit'),
    415: error('unsupported_media_type'),
    422: error('undecodable_image, image_too_large (over the pixel limit, from the header) or image_too_small'),
    429: error('rate_limited (Retry-After says when to retry)'),
    500: error('internal_error, logged with the request id'),
    503: error('model_unavailable (no ONNX export, or a model that does not match the manifest), or over_time_budget'),
  },
});

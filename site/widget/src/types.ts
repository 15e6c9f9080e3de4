/**
 * The widget's view of POST /classify, derived from the edge's zod schemas
 * (edge/src/schemas.ts) so the two cannot drift. Type-only imports: esbuild
 * erases them, no zod reaches the browser.
 */
import type { z } from '@hono/zod-openapi';
import type {
  ClassifyResponse as EdgeClassifyResponse,
  EvidenceSchema,
  PredictionSchema,
} from '../../../edge/src/schemas.ts';

type EdgeResponse = z.infer<typeof EdgeClassifyResponse>;

/** One prototype's share of a class score. */
export type EvidenceItem = z.infer<typeof EvidenceSchema>;

export type Prediction = z.infer<typeof PredictionSchema>;

/**
 * The edge's answer, which local mode mirrors so one renderer serves both:
 * all of it but what only a server knows (request id, upload format, its timings' names).
 */
export interface ClassifyResponse extends Pick<EdgeResponse, 'model' | 'predictions'> {
  /** The photo as decoded (EXIF orientation applied): the frame its boxes are in. */
  image?: Pick<EdgeResponse['image'], 'width' | 'height'>;
  timings?: Record<string, number>;
}

export type Mode = 'remote' | 'local';
export type Provider = 'webgpu' | 'wasm';

export interface ClassifyResult extends ClassifyResponse {
  mode: Mode;
  /** Local mode's onnxruntime-web execution provider. */
  provider: Provider | null;
  /** The photo as this browser decoded it; boxes are in its pixels. */
  image: { width: number; height: number };
}

export interface ClassifyOptions {
  top: number;
  evidence: number;
}

import type { Box } from '../../../shared/src/geometry.ts';

/** One prototype's share of a class score: the edge's contract, also produced by local mode. */
export interface EvidenceItem {
  prototypeId: number;
  similarity: number;
  weight: number;
  /** Points contributed: similarity x weight. */
  contribution: number;
  /** Where the prototype matched, in the photo's own pixels. */
  box: Box;
  prototypeImageUrl: string | null;
  sourceImageUrl?: string | null;
}

export interface Prediction {
  classId: number;
  label: string;
  probability: number;
  logit: number;
  evidence: EvidenceItem[];
}

/** POST /classify's answer (edge/), which local mode mirrors so one renderer serves both. */
export interface ClassifyResponse {
  model: { id: string; version: string };
  predictions: Prediction[];
  /** The photo as the edge decoded it (EXIF orientation applied): the frame its boxes are in. */
  image?: { width: number; height: number };
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

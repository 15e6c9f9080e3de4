/**
 * The /classify answer from the model's distance maps: shared explain() maths
 * (similarities, logits, per-class evidence and boxes in the photo's pixels),
 * dressed with labels and picture URLs.
 */
import { explain, type Box } from '@protoatlas/shared';
import { assetUrl, type LoadedBundle } from './bundle.ts';
import type { ModelOutputs } from './model-session.ts';

export interface ExplainOptions {
  top: number;
  evidence: number;
  origin: string;
}

/**
 * Longest side at which boxes are computed. A box comes from a 7x7-ish map
 * upsampled; at 500 px that upsampling and its percentile cost ~5 ms a box,
 * at 160 px a tenth of it, and the box moves by at most a few pixels.
 */
export const BOX_SIDE = 160;

/** A box found on the scaled-down image, in the full image's pixels (covering, clipped). */
function scaleBox(b: Box, sx: number, sy: number, width: number, height: number): Box {
  const x = Math.floor(b.x * sx);
  const y = Math.floor(b.y * sy);
  return { x, y, w: Math.min(width, Math.ceil((b.x + b.w) * sx)) - x, h: Math.min(height, Math.ceil((b.y + b.h) * sy)) - y };
}

export function explainPrediction(b: LoadedBundle, out: ModelOutputs, image: { width: number; height: number }, opts: ExplainOptions) {
  const m = b.manifest;
  const scale = Math.min(1, BOX_SIDE / Math.max(image.width, image.height));
  const small = { width: Math.max(1, Math.round(image.width * scale)), height: Math.max(1, Math.round(image.height * scale)) };
  const e = explain(
    { data: out.distances, prototypes: m.prototypes.length, height: out.gridHeight, width: out.gridWidth, layout: 'prototype-major' },
    b.explainModel,
    small,
    { top: opts.top, evidence: opts.evidence },
  );
  const sx = image.width / small.width;
  const sy = image.height / small.height;
  return e.predictions.map((p) => ({
    classId: p.classId,
    label: m.classes[p.classId].name,
    key: m.classes[p.classId].key,
    probability: p.probability,
    logit: p.logit,
    evidence: p.evidence.map((ev) => {
      const proto = m.prototypes[ev.prototype];
      return {
        prototypeId: ev.prototype,
        prototypeClassId: proto.classId,
        similarity: ev.similarity,
        weight: ev.weight,
        contribution: ev.contribution,
        box: scale === 1 ? ev.box : scaleBox(ev.box, sx, sy, image.width, image.height),
        prototypeImageUrl: assetUrl(opts.origin, proto.files?.crop),
        sourceImageUrl: assetUrl(opts.origin, proto.files?.source),
        heatmapImageUrl: assetUrl(opts.origin, proto.files?.heatmap),
      };
    }),
  }));
}

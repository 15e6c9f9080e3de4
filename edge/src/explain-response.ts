/**
 * The /classify answer from the model's distance maps: shared explain() maths
 * (similarities, logits, per-class evidence and boxes in the photo's pixels),
 * dressed with labels and picture URLs.
 */
import { SERVED_BOX_SIDE, explain } from '@protoatlas/shared';
import { assetUrl, type LoadedBundle } from './bundle.ts';
import type { ModelOutputs } from './model-session.ts';

export interface ExplainOptions {
  top: number;
  evidence: number;
  origin: string;
}

export function explainPrediction(
  b: LoadedBundle,
  out: ModelOutputs,
  image: { width: number; height: number },
  opts: ExplainOptions,
) {
  const m = b.manifest;
  const e = explain(
    {
      data: out.distances,
      prototypes: m.prototypes.length,
      height: out.gridHeight,
      width: out.gridWidth,
      layout: 'prototype-major',
    },
    b.explainModel,
    image,
    { top: opts.top, evidence: opts.evidence, boxMaxSide: SERVED_BOX_SIDE },
  );
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
        box: ev.box,
        prototypeImageUrl: assetUrl(opts.origin, proto.files?.crop),
        sourceImageUrl: assetUrl(opts.origin, proto.files?.source),
        heatmapImageUrl: assetUrl(opts.origin, proto.files?.heatmap),
      };
    }),
  }));
}

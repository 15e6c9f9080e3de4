import { explain, manifestLastLayer, type Explanation, type Manifest } from '@protoatlas/shared';
import type { ModelRunner } from './model-runner.ts';

export interface ImageExplanation {
  explanation: Explanation;
  width: number;
  height: number;
  /** Squared distances [HW, m] (patch-major) of the image, for further pictures. */
  distances: Float32Array;
}

/**
 * Local analysis of one photo: the model's distance maps from the trainer's
 * model, then the shared explanation code (the same the edge and widget run).
 */
export async function explainImage(
  runner: ModelRunner,
  manifest: Manifest,
  path: string,
  opts: { top?: number; evidence?: number } = {},
): Promise<ImageExplanation> {
  const img = await runner.loadImage(path, undefined, { orient: true });
  const [H, W] = runner.featureShape;
  const m = manifest.prototypes.length;
  if (runner.head.numPrototypes !== m)
    throw new Error(
      `the bundle's model has ${runner.head.numPrototypes} prototypes but its manifest lists ${m}; rebuild the bundle`,
    );
  const [maps] = await runner.imageDistances([img.input]);
  const explanation = explain(
    { data: maps.data, prototypes: m, height: H, width: W, layout: 'patch-major' },
    {
      lastLayer: manifestLastLayer(manifest),
      numClasses: manifest.classes.length,
      pruned: manifest.prototypes.map((p) => p.pruned),
      epsilon: manifest.similarityEpsilon,
    },
    { width: img.width, height: img.height },
    opts,
  );
  return { explanation, width: img.width, height: img.height, distances: maps.data };
}

/** The compact terminal table: classes with probability, then their top prototypes. */
export function formatExplanation(e: ImageExplanation, manifest: Manifest, file: string): string {
  const lines = [`${file} (${e.width}x${e.height})`];
  for (const [rank, p] of e.explanation.predictions.entries()) {
    lines.push(
      `${rank + 1}. ${manifest.classes[p.classId].name}  ${(100 * p.probability).toFixed(1)}%  (logit ${p.logit.toFixed(3)})`,
    );
    lines.push(
      `   ${'prototype'.padEnd(10)} ${'of class'.padEnd(28)} ${'similarity'.padStart(10)} ${'weight'.padStart(8)} ${'points'.padStart(8)}  box in photo (x,y,w,h)`,
    );
    for (const ev of p.evidence) {
      const cls = manifest.classes[manifest.prototypes[ev.prototype].classId].name;
      lines.push(
        `   ${(`#${ev.prototype}`).padEnd(10)} ${cls.slice(0, 28).padEnd(28)} ${ev.similarity.toFixed(3).padStart(10)} ${ev.weight.toFixed(3).padStart(8)} ${ev.contribution.toFixed(3).padStart(8)}  ${ev.box.x},${ev.box.y},${ev.box.w},${ev.box.h}`,
      );
    }
  }
  return lines.join('\n');
}

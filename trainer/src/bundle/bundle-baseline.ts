/**
 * The black box a bundle's model card compares the model with. A frozen-backbone run trains its own
 * (the linear probe, in the run's summary); a fine-tuned run is compared with a baseline fine-tuned
 * on its own (`npm run baseline`), attached with `npm run bundle -- <run> --baseline <dir>`. The
 * attached record is copied into the run, so later bundles and edited versions keep it.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Manifest } from '@protoatlas/shared';
import { baselineOnImages, readBaselineRecord } from '../analysis/baseline-record.ts';
import { correctTop1, pairedDifference } from '../analysis/paired-accuracy.ts';
import { writeFileAtomic } from '../core/atomic.ts';
import { exists, runPaths } from '../core/run-dir.ts';
import type { Predictions } from '../stages/predict.ts';

export const FROZEN_BASELINE_METHOD = 'the same frozen backbone with global average pooling and a linear softmax';

type ManifestBaseline = NonNullable<Manifest['metrics']['baseline']>;

export interface BundleBaseline {
  /** The baseline's figures, without the paired comparison (added once the model is scored). */
  figures: ManifestBaseline;
  /** Per validation image, whether the baseline gets it right (attached baselines only). */
  correct: boolean[] | null;
}

/**
 * The baseline of `run`: the record given (`given`: its directory or file), else the one attached to
 * the run earlier, else the frozen probe of the run's summary. A given record is checked against the
 * run's validation images before it is copied into the run.
 */
export async function bundleBaseline(
  run: string,
  given: string | null | undefined,
  valIds: readonly string[],
  frozen: { top1: number; top5: number } | null | undefined,
): Promise<BundleBaseline | null> {
  const attached = runPaths(run).baseline;
  const source = given ?? ((await exists(attached)) ? attached : null);
  if (source) {
    const { file, record } = await readBaselineRecord(source);
    const b = baselineOnImages(record, file, valIds, run);
    if (resolve(file) !== resolve(attached)) await writeFileAtomic(attached, await readFile(file));
    return {
      figures: { top1: b.top1, top5: b.top5, method: b.method.replace(/^baseline:\s*/i, '') },
      correct: b.correct,
    };
  }
  return frozen ? { figures: { ...frozen, method: FROZEN_BASELINE_METHOD }, correct: null } : null;
}

/** The model against the baseline on the same images, when both were scored per image. */
export function withPairedDifference(b: BundleBaseline, model: Predictions | null): ManifestBaseline {
  if (!b.correct || !model || model.n !== b.correct.length || model.n < 2) return b.figures;
  const d = pairedDifference(correctTop1(model.logits, model.labels, model.numClasses), b.correct);
  return {
    ...b.figures,
    paired: { n: d.n, difference: d.difference, interval95: d.interval95, onlyModel: d.onlyA, onlyBaseline: d.onlyB },
  };
}

/**
 * A black-box baseline's record (`baseline.json`, written by `npm run baseline`): what it is, its
 * validation accuracy and, for a fine-tuned baseline, each validation image's prediction. A run
 * compared against it must have been scored on the same validation images, in the same order.
 */
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';

const Unit = z.number().min(0).max(1);

export const BaselineRecordSchema = z.object({
  method: z.string().min(1),
  preset: z.string().optional(),
  backend: z.string().optional(),
  /** The dataset's directory it trained on. */
  data: z.string().optional(),
  classes: z.number().int().positive().optional(),
  train: z.object({ n: z.number().int().nonnegative(), top1: Unit.nullable(), note: z.string().optional() }).optional(),
  /** One row per epoch, as the baseline's trainer reports it. */
  curve: z.array(z.record(z.string(), z.unknown())).optional(),
  seconds: z.number().nonnegative().optional(),
  val: z.object({ n: z.number().int().nonnegative(), top1: Unit, top5: Unit }).nullable(),
  valPredictions: z
    .object({
      ids: z.array(z.string()),
      labels: z.array(z.number().int().nonnegative()),
      predicted: z.array(z.number().int().nonnegative()),
    })
    .refine((p) => p.labels.length === p.ids.length && p.predicted.length === p.ids.length, {
      message: 'ids, labels and predicted must have the same length',
    })
    .nullable()
    .optional(),
});

export type BaselineRecord = z.infer<typeof BaselineRecordSchema>;

/** The name of the record inside a baseline's directory (and inside a run it is attached to). */
export const BASELINE_FILE = 'baseline.json';

/** Reads and checks a baseline record; `path` is the record or the directory holding it. */
export async function readBaselineRecord(path: string): Promise<{ file: string; record: BaselineRecord }> {
  const given = resolve(path);
  const file = basename(given) === BASELINE_FILE || given.endsWith('.json') ? given : join(given, BASELINE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error(
      `${file}: not found. Give the directory of a finished \`npm run baseline --workspace trainer\` run (it writes ${BASELINE_FILE})`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const parsed = BaselineRecordSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `${file}: not a baseline record (${issue.path.join('.') || 'top level'}: ${issue.message}); ` +
        `it is written by \`npm run baseline --workspace trainer\``,
    );
  }
  return { file, record: parsed.data };
}

/** The baseline on a run's validation images: per image correct or not, and its accuracy. */
export interface BaselineOnImages {
  correct: boolean[];
  top1: number;
  top5: number;
  method: string;
}

/**
 * Checks that the record holds a prediction for each of `valIds`, in that order (the same seed and
 * data split), and returns them; `against` names the run in the error.
 */
export function baselineOnImages(
  record: BaselineRecord,
  file: string,
  valIds: readonly string[],
  against: string,
): BaselineOnImages {
  const p = record.valPredictions;
  if (!p || !record.val)
    throw new Error(
      `${file} has no per-image predictions (a frozen-feature baseline, or one that predates them): ` +
        'run `npm run baseline --workspace trainer` with --resume on its directory to add them',
    );
  if (p.ids.length !== valIds.length || p.ids.some((id, i) => id !== valIds[i]))
    throw new Error(
      `${file} was scored on other validation images than ${against} (${p.ids.length} against ${valIds.length}; ` +
        "another seed, data split or dataset): train the baseline with the run's preset, seed and data settings",
    );
  const correct = p.predicted.map((c, i) => c === p.labels[i]);
  return {
    correct,
    top1: correct.filter(Boolean).length / Math.max(1, correct.length),
    top5: record.val.top5,
    method: record.method,
  };
}

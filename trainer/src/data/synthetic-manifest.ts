import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DatasetError } from './errors.ts';
import { PARTS } from './synthetic-design.ts';

export const SYNTHETIC_MANIFEST = 'synthetic.json';

const Part = z.enum(PARTS);
const Box = z.tuple([z.number(), z.number(), z.number(), z.number()]);
const BoxedPart = z.enum([...PARTS, 'head', 'body']);

const SyntheticImageSchema = z.object({
  split: z.enum(['train', 'test']),
  label: z.number().int().nonnegative(),
  mirrored: z.boolean(),
  /** The values this image shows (fixed by its class or drawn at random). */
  attributes: z.record(Part, z.string()),
  discriminativeParts: z.array(Part),
  /** Pixel box (x, y, w, h) of every part, clamped to the image; null when absent (no crest). */
  parts: z.record(BoxedPart, Box.nullable()),
});

export const SyntheticManifestSchema = z.object({
  format: z.literal('protoatlas-synthetic'),
  version: z.literal(1),
  seed: z.number(),
  size: z.number().int().positive(),
  trainPerClass: z.number().int().nonnegative(),
  testPerClass: z.number().int().nonnegative(),
  /** Parts that can be discriminative, in a fixed order. */
  parts: z.array(Part),
  classes: z.array(
    z.object({
      name: z.string(),
      attributes: z.partialRecord(Part, z.string()),
      discriminativeParts: z.array(Part),
    }),
  ),
  /** Keyed by path relative to the dataset root, e.g. "train/001.Red_Hooked_.../0.png". */
  images: z.record(z.string(), SyntheticImageSchema),
});

export type SyntheticManifest = z.infer<typeof SyntheticManifestSchema>;
export type SyntheticImageInfo = z.infer<typeof SyntheticImageSchema>;
export type BoxedPartName = z.infer<typeof BoxedPart>;

/** Read and validate `<root>/synthetic.json`. */
export async function readSyntheticManifest(root: string): Promise<SyntheticManifest> {
  const file = join(root, SYNTHETIC_MANIFEST);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new DatasetError(`cannot read synthetic manifest (${e instanceof Error ? e.message : String(e)})`, {
      file,
      fix: 'regenerate the synthetic dataset',
    });
  }
  const parsed = SyntheticManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DatasetError(`invalid synthetic manifest at ${issue.path.join('.') || '(root)'}: ${issue.message}`, {
      file,
      fix: 'regenerate the synthetic dataset',
    });
  }
  return parsed.data;
}

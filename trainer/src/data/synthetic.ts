import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../core/rng.ts';
import { isFile } from './fs-probe.ts';
import { Canvas } from './raster.ts';
import { drawBird, randomPose } from './synthetic-bird.ts';
import { PARTS, PART_VALUES, designClasses, pick, type PartValues } from './synthetic-design.ts';
import { SYNTHETIC_MANIFEST, type SyntheticManifest } from './synthetic-manifest.ts';

export interface SyntheticOptions {
  classes?: number;
  trainPerClass?: number;
  testPerClass?: number;
  /** Image side in pixels; the bird scales with it. */
  size?: number;
  seed?: number;
}

/** PNG encodes in flight at once (sharp works on libuv's thread pool). */
const IN_FLIGHT = 16;

/**
 * Generate a part-labelled synthetic "bird" dataset (no download): drawn birds whose
 * class is decided only by local parts (beak, crest, wing bar, tail, eye ring), on
 * random backgrounds with random body/head colours and pose. Writes
 * train/<class>/<n>.png, test/<class>/<n>.png and synthetic.json (class attributes,
 * per-image part boxes). Same seed and options give byte-identical files.
 */
export async function generateSynthetic(outDir: string, opts: SyntheticOptions = {}): Promise<SyntheticManifest> {
  const nClasses = opts.classes ?? 8;
  const trainPerClass = opts.trainPerClass ?? 60;
  const testPerClass = opts.testPerClass ?? 20;
  const size = opts.size ?? 64;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(size) || size < 16)
    throw new Error(`generateSynthetic: size must be an integer >= 16, got ${size}`);
  if (!Number.isInteger(nClasses) || nClasses < 1)
    throw new Error(`generateSynthetic: classes must be a positive integer, got ${nClasses}`);
  // Every class needs a training image, or the loader rejects its empty folder.
  if (!Number.isInteger(trainPerClass) || trainPerClass < 1)
    throw new Error(`generateSynthetic: trainPerClass must be >= 1, got ${trainPerClass}`);
  if (!Number.isInteger(testPerClass) || testPerClass < 0)
    throw new Error(`generateSynthetic: testPerClass must be >= 0, got ${testPerClass}`);
  await prepareOutDir(outDir);

  const rng = new Rng(seed);
  const classes = designClasses(nClasses, rng);
  const manifest: SyntheticManifest = {
    format: 'protoatlas-synthetic',
    version: 1,
    seed,
    size,
    trainPerClass,
    testPerClass,
    parts: [...PARTS],
    classes: classes.map((c) => ({
      name: c.name,
      attributes: c.attributes,
      discriminativeParts: c.discriminativeParts,
    })),
    images: {},
  };

  const pending = new Set<Promise<void>>();
  const failures: unknown[] = [];
  for (const [split, count] of [
    ['train', trainPerClass],
    ['test', testPerClass],
  ] as const) {
    for (let label = 0; label < nClasses; label++) {
      const spec = classes[label];
      await mkdir(join(outDir, split, spec.name), { recursive: true });
      for (let n = 0; n < count; n++) {
        const values = {} as PartValues;
        for (const p of PARTS) values[p] = spec.attributes[p] ?? pick(rng, PART_VALUES[p]);
        const pose = randomPose(rng, size);
        const canvas = new Canvas(size, size);
        const parts = drawBird(canvas, rng, values, pose);
        const rel = `${split}/${spec.name}/${String(n).padStart(4, '0')}.png`;
        manifest.images[rel] = {
          split,
          label,
          mirrored: pose.mirror,
          attributes: values,
          discriminativeParts: spec.discriminativeParts,
          parts,
        };
        // Encode failures are collected and thrown below, so no rejection goes unhandled.
        const write: Promise<void> = sharp(canvas.data, { raw: { width: size, height: size, channels: 3 } })
          .png({ compressionLevel: 6 })
          .toFile(join(outDir, rel))
          .then(
            () => undefined,
            (e: unknown) => void failures.push(e),
          )
          .finally(() => pending.delete(write));
        pending.add(write);
        if (pending.size >= IN_FLIGHT) await Promise.race(pending);
        if (failures.length > 0) {
          await Promise.all(pending);
          throw failures[0];
        }
      }
    }
  }
  await Promise.all(pending);
  if (failures.length > 0) throw failures[0];
  await writeFile(join(outDir, SYNTHETIC_MANIFEST), JSON.stringify(manifest));
  return manifest;
}

/** Written first, so a folder left half-written by an interrupted run is still known as ours. */
const MARKER = '.protoatlas-synthetic';

/**
 * Regenerating over an earlier synthetic dataset replaces it (stale class folders would
 * otherwise become extra classes); any other non-empty folder is left alone.
 */
async function prepareOutDir(outDir: string): Promise<void> {
  let entries: string[] = [];
  try {
    entries = await readdir(outDir);
  } catch {
    // does not exist yet
  }
  if (entries.length > 0) {
    if (!(await isFile(join(outDir, SYNTHETIC_MANIFEST))) && !(await isFile(join(outDir, MARKER)))) {
      throw new Error(
        `generateSynthetic: ${outDir} is not empty and holds no ${SYNTHETIC_MANIFEST}; choose an empty or new folder`,
      );
    }
    await Promise.all(
      ['train', 'test', SYNTHETIC_MANIFEST].map((e) => rm(join(outDir, e), { recursive: true, force: true })),
    );
  }
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, MARKER), 'generated by ProtoAtlas generateSynthetic; safe to delete with this folder\n');
}

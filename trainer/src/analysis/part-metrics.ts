/**
 * Explanation-quality metrics of Huang et al., ICCV 2023 ("Evaluation and Improvement
 * of Interpretability for Self-Explainable Part-Prototype Networks"), following their
 * code (EvalProtoPNet: util/eval_interpretability.py, util/local_parts.py):
 *
 * - For a prototype and an image of its class, the activation map is upsampled
 *   (bicubic) to the input size, the first maximum taken, and the box of
 *   +-half_size pixels around it (clipped, ends inclusive) marks which of the
 *   image's visible parts the prototype "covers" (a 0/1 vector, one entry per part;
 *   CUB's 15 parts are used one by one, not grouped).
 * - Consistency: a prototype is consistent when some part is covered in at least
 *   `threshold` (0.8) of the class images where that part is visible; the score is
 *   the share of consistent prototypes.
 * - Stability: the share of images whose part vector is unchanged when Gaussian noise
 *   (std 0.2, clipped to +-0.25) is added to the normalised input, averaged over prototypes.
 *
 * Scores are fractions in [0, 1] (the paper prints percentages).
 */
import { boxCoverage, logSimilarity, upsampleBicubic, type Box } from '@protoatlas/shared';
import type { FeatureShape, PreprocessSpec } from '../backbone/types.ts';
import { loadCubParts, type PartAnnotations, type PartPoint } from '../data/cub-parts.ts';
import { addClippedNoiseInPlace } from '../data/augment.ts';
import { toNHWC } from '../data/decode.ts';
import type { SyntheticManifest } from '../data/synthetic-manifest.ts';
import type { DatasetItem, RgbImage } from '../data/types.ts';
import { Progress } from '../core/progress.ts';
import { Rng } from '../core/rng.ts';

/** The paper's settings: a 72x72 box on a 224x224 input, mu = 0.8, noise 0.2 clipped at 0.25. */
export const PAPER_HALF_SIZE = 36;
export const PAPER_INPUT_SIZE = 224;
export const CONSISTENCY_THRESHOLD = 0.8;
export const NOISE_STD = 0.2;
export const NOISE_CLIP = 0.25;

/** half_size for another input size, keeping the box the same share of the image as 36 px of 224. */
export function defaultHalfSize(inputSize: number): number {
  return Math.max(1, Math.round((PAPER_HALF_SIZE * inputSize) / PAPER_INPUT_SIZE));
}

/** A box on the model input, both ends inclusive (as the paper's in_bbox tests them). */
export interface InputRegion {
  y0: number;
  y1: number;
  x0: number;
  x1: number;
}

/** The fixed-size region around the first maximum of the bicubically upsampled map. */
export function activationRegion(
  map: ArrayLike<number>,
  mapH: number,
  mapW: number,
  inputSize: number,
  halfSize: number,
): InputRegion {
  const up = upsampleBicubic(map, mapH, mapW, inputSize, inputSize);
  let best = 0;
  // Strict '>' keeps the first maximum in row-major order, as np.where(...)[0][0] does.
  for (let i = 1; i < up.length; i++) if (up[i] > up[best]) best = i;
  const r = Math.floor(best / inputSize);
  const c = best % inputSize;
  return {
    y0: Math.max(0, r - halfSize),
    y1: Math.min(inputSize, r + halfSize),
    x0: Math.max(0, c - halfSize),
    x1: Math.min(inputSize, c + halfSize),
  };
}

/** Where an image pixel coordinate lands on the input, truncated as the paper's int(img_size * ratio). */
export function toInputCoordinate(v: number, imageSide: number, inputSize: number): number {
  return Math.trunc((inputSize * v) / imageSide);
}

export interface PresenceGeometry {
  /** Size of the image the parts are given in (the crop, before resizing). */
  imageW: number;
  imageH: number;
  /** Model input side (the image is resized to inputSize squared). */
  inputSize: number;
  halfSize: number;
}

/** The 0/1 vector of parts (length numParts) lying in the prototype's region on this image. */
export function partPresence(
  map: ArrayLike<number>,
  mapH: number,
  mapW: number,
  points: PartPoint[],
  numParts: number,
  g: PresenceGeometry,
): Uint8Array {
  const region = activationRegion(map, mapH, mapW, g.inputSize, g.halfSize);
  const hits = new Uint8Array(numParts);
  for (const p of points) {
    const x = toInputCoordinate(p.x, g.imageW, g.inputSize);
    const y = toInputCoordinate(p.y, g.imageH, g.inputSize);
    if (y >= region.y0 && y <= region.y1 && x >= region.x0 && x <= region.x1) hits[p.part] = 1;
  }
  return hits;
}

/** Which parts are annotated (visible) on an image. */
export function visibleParts(points: PartPoint[], numParts: number): Uint8Array {
  const v = new Uint8Array(numParts);
  for (const p of points) v[p.part] = 1;
  return v;
}

/** One prototype on one image: parts in its region, parts visible. */
export interface PartObservation {
  hits: Uint8Array;
  visible: Uint8Array;
}

export interface PrototypeConsistency {
  consistent: boolean;
  /** Part with the highest frequency, -1 when no part is ever covered. */
  topPart: number;
  /** Its frequency: images where covered / images where visible. */
  topPartFrequency: number;
}

/** Consistency of one prototype over the images of its class. */
export function prototypeConsistency(
  observations: PartObservation[],
  threshold = CONSISTENCY_THRESHOLD,
): PrototypeConsistency {
  if (observations.length === 0) return { consistent: false, topPart: -1, topPartFrequency: 0 };
  const numParts = observations[0].hits.length;
  const covered = new Float64Array(numParts);
  const shown = new Float64Array(numParts);
  for (const o of observations) {
    if (o.hits.length !== numParts || o.visible.length !== numParts)
      throw new Error(`prototypeConsistency: part vectors must all have ${numParts} entries`);
    for (let k = 0; k < numParts; k++) {
      if (o.hits[k] && !o.visible[k]) throw new Error(`prototypeConsistency: part ${k} is covered but not visible`);
      covered[k] += o.hits[k];
      shown[k] += o.visible[k];
    }
  }
  let topPart = -1;
  let topPartFrequency = 0;
  for (let k = 0; k < numParts; k++) {
    // A part never visible counts as 0, as the paper's max(count, 1) denominator gives.
    const f = covered[k] / Math.max(1, shown[k]);
    if (f > topPartFrequency) {
      topPart = k;
      topPartFrequency = f;
    }
  }
  return { consistent: topPart >= 0 && topPartFrequency >= threshold, topPart, topPartFrequency };
}

/** Share of prototypes that are consistent; prototypes without images are left out (NaN if none remain). */
export function consistencyScore(perPrototype: PartObservation[][], threshold = CONSISTENCY_THRESHOLD): number {
  const evaluated = perPrototype.filter((obs) => obs.length > 0);
  if (evaluated.length === 0) return NaN;
  return evaluated.filter((obs) => prototypeConsistency(obs, threshold).consistent).length / evaluated.length;
}

/** Share of images whose part vector is the same with and without noise. */
export function prototypeStability(clean: Uint8Array[], noisy: Uint8Array[]): number {
  if (clean.length !== noisy.length)
    throw new Error(`prototypeStability: ${clean.length} clean vs ${noisy.length} noisy vectors`);
  if (clean.length === 0) return NaN;
  let same = 0;
  clean.forEach((a, i) => {
    const b = noisy[i];
    if (a.length !== b.length) throw new Error(`prototypeStability: vectors of image ${i} differ in length`);
    if (a.every((v, k) => v === b[k])) same++;
  });
  return same / clean.length;
}

/** Mean prototypeStability over prototypes; prototypes without images are left out (NaN if none remain). */
export function stabilityScore(clean: Uint8Array[][], noisy: Uint8Array[][]): number {
  if (clean.length !== noisy.length)
    throw new Error(`stabilityScore: ${clean.length} clean vs ${noisy.length} noisy prototypes`);
  const values = clean.map((c, j) => prototypeStability(c, noisy[j])).filter((s) => !Number.isNaN(s));
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN;
}

/** A copy of a normalised input with N(0, std) noise clipped to +-clip added to every value. */
export function addClippedNoise(input: Float32Array, rng: Rng, std: number, clip: number): Float32Array {
  const out = Float32Array.from(input);
  addClippedNoiseInPlace(out, rng, std, clip);
  return out;
}

/** What partMetrics needs of a model; ModelRunner provides it. */
export interface PartMetricsRunner {
  readonly preprocess: PreprocessSpec;
  readonly featureShape: FeatureShape;
  readonly head: { readonly protoClass: Int32Array; readonly epsilon: number };
  distanceMaps(input: Float32Array, n: number): Promise<Float32Array>;
  loadImage(
    path: string,
    box?: [number, number, number, number],
  ): Promise<{ input: RgbImage; width: number; height: number }>;
}

export interface PartMetricsOptions {
  noiseStd?: number;
  noiseClip?: number;
  seed?: number;
  batchSize?: number;
  quiet?: boolean;
  /** Prototypes to leave out (pruned), by index. */
  pruned?: boolean[];
  threshold?: number;
  /** Default: defaultHalfSize(input size). */
  halfSize?: number;
}

export interface PrototypePartMetrics {
  prototype: number;
  classIndex: number;
  /** Images of its class it was evaluated on. */
  images: number;
  consistent: boolean;
  topPart: string | null;
  topPartFrequency: number;
  stability: number;
  /** Share of the images where its region covers no annotated part (a background prototype). */
  noPart: number;
}

export interface PartMetricsResult {
  consistency: number;
  stability: number;
  /** Evaluated prototypes (not pruned, with at least one image of their class). */
  perPrototype: PrototypePartMetrics[];
  /** Images with part annotations that were used. */
  images: number;
  /** 95% intervals across prototypes (prototypeIntervals). */
  interval95: { consistency: [number, number]; stability: [number, number] };
  halfSize: number;
  threshold: number;
}

/**
 * Consistency and stability of a model's prototypes on `items` (aligned with
 * `parts.perItem`; items without annotations are skipped). Each prototype is
 * evaluated on the items of its own class only, as the paper does.
 *
 * Where we differ from EvalProtoPNet: the paper uses CUB's test split; callers here
 * pass whichever split they hold (our CUB copy has only training images, so the
 * validation split). Our input need not be 224, so half_size scales with it.
 * Prototypes whose class has no annotated image are left out of both scores (the
 * paper always has test images per class). Noise is added to the normalised input
 * as in the paper; with [-1, 1] preprocessing (std 0.5) that is about twice as much
 * noise in pixel terms as with ImageNet normalisation.
 */
export async function partMetrics(
  runner: PartMetricsRunner,
  items: DatasetItem[],
  parts: PartAnnotations,
  opts: PartMetricsOptions = {},
): Promise<PartMetricsResult> {
  if (parts.perItem.length !== items.length)
    throw new Error(`partMetrics: ${items.length} items but part annotations for ${parts.perItem.length}`);
  const size = runner.preprocess.size;
  const [H, W] = runner.featureShape;
  const HW = H * W;
  const protoClass = runner.head.protoClass;
  const m = protoClass.length;
  const halfSize = opts.halfSize ?? defaultHalfSize(size);
  const threshold = opts.threshold ?? CONSISTENCY_THRESHOLD;
  const noiseStd = opts.noiseStd ?? NOISE_STD;
  const noiseClip = opts.noiseClip ?? NOISE_CLIP;
  const batchSize = opts.batchSize ?? 16;
  const numParts = parts.names.length;
  const rng = new Rng(opts.seed ?? 0);

  const protosOfClass = new Map<number, number[]>();
  for (let j = 0; j < m; j++) {
    if (opts.pruned?.[j]) continue;
    const list = protosOfClass.get(protoClass[j]) ?? [];
    list.push(j);
    protosOfClass.set(protoClass[j], list);
  }
  const used = items.map((_, i) => i).filter((i) => parts.perItem[i] !== null);
  if (used.length === 0)
    throw new Error(`partMetrics: none of the ${items.length} images has part annotations (from ${parts.source})`);

  const observations: PartObservation[][] = Array.from({ length: m }, () => []);
  const noisyHits: Uint8Array[][] = Array.from({ length: m }, () => []);
  const bar = new Progress({ label: 'part metrics', total: used.length, unit: 'img', quiet: opts.quiet });
  const similarityMap = (maps: Float32Array, img: number, j: number): Float32Array => {
    const out = new Float32Array(HW);
    for (let p = 0; p < HW; p++) out[p] = logSimilarity(maps[(img * HW + p) * m + j], runner.head.epsilon);
    return out;
  };

  for (let s = 0; s < used.length; s += batchSize) {
    const batch = used.slice(s, s + batchSize);
    const loaded = await Promise.all(batch.map((i) => runner.loadImage(items[i].path, items[i].box)));
    const input = toNHWC(
      loaded.map((l) => l.input),
      runner.preprocess,
      false,
    );
    const clean = await runner.distanceMaps(input, batch.length);
    const noisy = await runner.distanceMaps(addClippedNoise(input, rng, noiseStd, noiseClip), batch.length);
    for (const maps of [clean, noisy]) {
      if (maps.length !== batch.length * HW * m)
        throw new Error(`partMetrics: distance maps have ${maps.length} values, expected ${batch.length}x${HW}x${m}`);
    }
    batch.forEach((i, b) => {
      const points = parts.perItem[i]!;
      const geometry = { imageW: loaded[b].width, imageH: loaded[b].height, inputSize: size, halfSize };
      const visible = visibleParts(points, numParts);
      for (const j of protosOfClass.get(items[i].label) ?? []) {
        observations[j].push({
          hits: partPresence(similarityMap(clean, b, j), H, W, points, numParts, geometry),
          visible,
        });
        noisyHits[j].push(partPresence(similarityMap(noisy, b, j), H, W, points, numParts, geometry));
      }
    });
    bar.tick(batch.length);
  }
  bar.finish();

  const perPrototype: PrototypePartMetrics[] = [];
  for (let j = 0; j < m; j++) {
    if (opts.pruned?.[j] || observations[j].length === 0) continue;
    const c = prototypeConsistency(observations[j], threshold);
    perPrototype.push({
      prototype: j,
      classIndex: protoClass[j],
      images: observations[j].length,
      consistent: c.consistent,
      topPart: c.topPart >= 0 ? parts.names[c.topPart] : null,
      topPartFrequency: c.topPartFrequency,
      stability: prototypeStability(
        observations[j].map((o) => o.hits),
        noisyHits[j],
      ),
      noPart: observations[j].filter((o) => o.hits.every((h) => h === 0)).length / observations[j].length,
    });
  }
  return {
    consistency: consistencyScore(observations, threshold),
    stability: stabilityScore(
      observations.map((obs) => obs.map((o) => o.hits)),
      noisyHits,
    ),
    perPrototype,
    images: used.length,
    interval95: prototypeIntervals(observations, noisyHits, threshold),
    halfSize,
    threshold,
  };
}

/**
 * 95% intervals of consistency and stability across prototypes: Wilson's score
 * interval for the share of consistent prototypes, and mean ± 1.96 standard
 * errors for the mean stability. They say how far the scores could move with
 * another draw of prototypes like these. They do not cover the bias of few images
 * per class (with 5, "≥ 80% of images" is 4 of 5, which chance reaches often):
 * only more images fix that (data.metricsPerClass). Resampling the images
 * themselves is no help there: duplicated images make prototypes look more
 * consistent, so such intervals miss the point estimate.
 */
export function prototypeIntervals(
  observations: PartObservation[][],
  noisyHits: Uint8Array[][],
  threshold = CONSISTENCY_THRESHOLD,
): { consistency: [number, number]; stability: [number, number] } {
  const evaluated = observations.map((_obs, j) => j).filter((j) => observations[j].length > 0);
  const n = evaluated.length;
  if (!n) return { consistency: [NaN, NaN], stability: [NaN, NaN] };
  const z = 1.96;
  const p = evaluated.filter((j) => prototypeConsistency(observations[j], threshold).consistent).length / n;
  const centre = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
  const half = (z / (1 + (z * z) / n)) * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  const stab = evaluated.map((j) =>
    prototypeStability(
      observations[j].map((o) => o.hits),
      noisyHits[j],
    ),
  );
  const mean = stab.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(stab.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  const clip = (x: number) => Math.min(1, Math.max(0, x));
  return {
    consistency: [clip(centre - half), clip(centre + half)],
    stability: [clip(mean - (z * sd) / Math.sqrt(n)), clip(mean + (z * sd) / Math.sqrt(n))],
  };
}

/** A prototype's box on one synthetic image, in that image's pixels. */
export interface PrototypeBox {
  prototype: number;
  classId: number;
  /** Path relative to the dataset root, as the manifest keys images. */
  imageKey: string;
  box: Box;
}

/** Share of a part's box that must lie inside a prototype's box for the prototype to cover it. */
export const SYNTHETIC_MIN_COVERAGE = 0.5;

/**
 * For the synthetic birds, whose discriminative parts are known: the share of
 * prototypes whose box covers one of their class's discriminative parts on that
 * image. "Covers" = at least half of the part box's area lies inside the prototype
 * box (boxCoverage >= 0.5): small parts (beak, eye ring) count when the prototype
 * box holds them, yet a box merely touching a part does not. Absent parts never count.
 */
export function syntheticPartCoverage(
  manifest: SyntheticManifest,
  prototypeBoxes: PrototypeBox[],
  minCoverage = SYNTHETIC_MIN_COVERAGE,
): { coverage: number; perPrototype: { prototype: number; coveredPart: string | null }[] } {
  if (prototypeBoxes.length === 0) throw new Error('syntheticPartCoverage: no prototype boxes given');
  const perPrototype = prototypeBoxes.map((pb) => {
    const image = manifest.images[pb.imageKey];
    if (!image)
      throw new Error(
        `syntheticPartCoverage: image "${pb.imageKey}" (prototype ${pb.prototype}) is not in the synthetic manifest`,
      );
    const cls = manifest.classes[pb.classId];
    if (!cls)
      throw new Error(
        `syntheticPartCoverage: class ${pb.classId} (prototype ${pb.prototype}) is not in the synthetic manifest`,
      );
    let coveredPart: string | null = null;
    for (const part of cls.discriminativeParts) {
      const b = image.parts[part];
      if (b && boxCoverage(pb.box, { x: b[0], y: b[1], w: b[2], h: b[3] }) >= minCoverage) {
        coveredPart = part;
        break;
      }
    }
    return { prototype: pb.prototype, coveredPart };
  });
  return { coverage: perPrototype.filter((p) => p.coveredPart !== null).length / perPrototype.length, perPrototype };
}

/**
 * Consistency and stability on `items` when the dataset at `root` has CUB part
 * annotations for at least one of them; null otherwise.
 */
export async function partMetricsWhereAnnotated(
  runner: PartMetricsRunner,
  root: string,
  items: DatasetItem[],
  opts: PartMetricsOptions = {},
): Promise<PartMetricsResult | null> {
  const annotations = await loadCubParts(root, items);
  if (!annotations?.perItem.some((p) => p !== null)) return null;
  return partMetrics(runner, items, annotations, opts);
}

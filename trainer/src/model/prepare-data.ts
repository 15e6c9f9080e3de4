import { join } from 'node:path';
import { loadOnnxBackbone } from '../backbone/onnx-backbone.ts';
import { importOnnxBackbone } from '../backbone/onnx-import.ts';
import { createSmallCnn } from '../backbone/small-cnn.ts';
import { loadTfjsLayersBackbone } from '../backbone/tfjs-layers-backbone.ts';
import { resolveWeights } from '../backbone/download.ts';
import { extractFeatureSets } from '../backbone/feature-cache.ts';
import { MIRRORED, ORIGINAL, type FeatureView } from '../backbone/feature-view.ts';
import type { FeatureShape, FrozenBackbone, PreprocessSpec, TrainableBackbone } from '../backbone/types.ts';
import type { AugmentSpec } from '../data/augment.ts';
import { decodeMany } from '../data/decode.ts';
import { loadDataset } from '../data/load-dataset.ts';
import { generateSynthetic } from '../data/synthetic.ts';
import type { Dataset, DatasetItem, SkippedFile, SplitName } from '../data/types.ts';
import {
  sharedFeatureSource,
  sharedImageSource,
  throughBackbone,
  type FeatureSource,
  type SharedStore,
} from '../stages/sources.ts';
import { packImages } from '../data/shared-images.ts';
import type { TrainConfig } from '../config/config.ts';
import { resolveDataPath, resolveRepoPath } from '../core/data-path.ts';
import { exists } from '../core/run-dir.ts';

export interface PreparedData {
  dataset: Dataset;
  featureShape: FeatureShape;
  preprocess: PreprocessSpec;
  /** Items actually usable per split (bad images removed), aligned with the sources. */
  itemsBySplit: Record<SplitName, DatasetItem[]>;
  sources: Partial<Record<SplitName, FeatureSource>>;
  trainableBackbone: TrainableBackbone | null;
  frozenBackbone: FrozenBackbone | null;
  /** Images that could not be decoded. */
  skipped: SkippedFile[];
}

/** Default location of the built-in synthetic dataset for the demo preset. */
export const DEFAULT_SYNTHETIC = { classes: 8, trainPerClass: 150, testPerClass: 30, size: 64, seed: 0 };
export const DEFAULT_SYNTHETIC_DIR = resolveRepoPath(
  `.cache/synthetic-birds-${DEFAULT_SYNTHETIC.classes}x${DEFAULT_SYNTHETIC.trainPerClass}-s${DEFAULT_SYNTHETIC.seed}`,
);

/** Locate or create the dataset for a run. The demo preset makes its synthetic birds on first use. */
export async function resolveDataDir(config: TrainConfig, dataDir: string | null, quiet?: boolean): Promise<string> {
  if (dataDir) return dataDir;
  if (config.backbone.kind !== 'small-cnn') {
    throw new Error(`preset ${config.preset} needs --data <dataset dir> (e.g. --data ../shared/data/cub200)`);
  }
  if (!(await exists(join(DEFAULT_SYNTHETIC_DIR, 'synthetic.json')))) {
    if (!quiet) process.stderr.write(`generating the synthetic bird dataset in ${DEFAULT_SYNTHETIC_DIR}\n`);
    await generateSynthetic(DEFAULT_SYNTHETIC_DIR, DEFAULT_SYNTHETIC);
  }
  return DEFAULT_SYNTHETIC_DIR;
}

/** The dataset at `root`, split as a run with this config splits it (validation and metrics hold-outs, seed). */
export function loadRunDataset(config: TrainConfig, root: string): Promise<Dataset> {
  return loadDataset(root, {
    valPerClass: config.data.valPerClass,
    metricsPerClass: config.data.metricsPerClass,
    seed: config.seed,
  });
}

export async function buildBackbone(
  config: TrainConfig,
  opts: { cacheDir: string; backboneWeights?: Map<string, { shape: number[]; data: Float32Array }> },
): Promise<{ frozen: FrozenBackbone | null; trainable: TrainableBackbone | null }> {
  const b = config.backbone;
  switch (b.kind) {
    case 'onnx': {
      const path = await resolveWeights(
        { path: b.path ? resolveDataPath(b.path) : undefined, url: b.url, sha256: b.sha256 },
        opts.cacheDir,
      );
      if (b.trainFrom && !b.trainable)
        throw new Error(`backbone.trainFrom ${b.trainFrom} names the layers to fine-tune: it needs trainable: true`);
      if (b.trainable && b.trainFrom) {
        // The bottom runs once per image (cached like any frozen backbone); the top trains on its output.
        const bottom = await loadOnnxBackbone({
          path,
          tap: b.trainFrom,
          preprocess: b.preprocess,
          threads: b.threads,
          compute: b.compute,
          outputStride: b.outputStride,
          inputBlur: b.inputBlur,
        });
        const top = await importOnnxBackbone({
          path,
          tap: b.tap,
          preprocess: b.preprocess,
          from: bottom.tapTensor,
          fromShape: bottom.featureShape,
          outputStride: b.outputStride,
        });
        if (opts.backboneWeights?.size) top.setWeights(opts.backboneWeights);
        return { frozen: bottom, trainable: top };
      }
      if (b.trainable) {
        const net = await importOnnxBackbone({
          path,
          tap: b.tap,
          preprocess: b.preprocess,
          outputStride: b.outputStride,
          inputBlur: b.inputBlur,
        });
        if (opts.backboneWeights?.size) net.setWeights(opts.backboneWeights);
        return { frozen: null, trainable: net };
      }
      return {
        frozen: await loadOnnxBackbone({
          path,
          tap: b.tap,
          preprocess: b.preprocess,
          threads: b.threads,
          compute: b.compute,
          outputStride: b.outputStride,
          inputBlur: b.inputBlur,
        }),
        trainable: null,
      };
    }
    case 'tfjs-layers': {
      const path = await resolveWeights(
        { path: b.path ? resolveDataPath(b.path) : undefined, url: b.url, sha256: b.sha256 },
        opts.cacheDir,
      );
      const model = await loadTfjsLayersBackbone({
        modelJsonPath: path,
        cutLayer: b.cutLayer,
        preprocess: b.preprocess,
      });
      if (b.trainable) {
        if (opts.backboneWeights?.size) model.setWeights(opts.backboneWeights);
        return { frozen: null, trainable: model };
      }
      return { frozen: model, trainable: null };
    }
    case 'small-cnn': {
      const cnn = createSmallCnn({
        inputSize: b.inputSize,
        channels: b.channels,
        convsPerStage: b.convsPerStage,
        seed: config.seed,
      });
      if (opts.backboneWeights?.size) cnn.setWeights(opts.backboneWeights);
      return { frozen: null, trainable: cnn };
    }
  }
}

function augmentSpec(config: TrainConfig): AugmentSpec {
  const { rotation, shear, skew, cropScale, probability, noise } = config.data.augment;
  // Without noise the spec stays as it was, so the cache keys of existing copies do not change.
  return { rotation, shear, skew, cropScale, probability, ...(noise > 0 ? { noise } : {}) };
}

/**
 * The cached augmented copies of the training images: copy k has its own transforms (seeded by the run's
 * seed and k) and every second copy is mirrored, so copies and orientations mix.
 */
function augmentedViews(config: TrainConfig): FeatureView[] {
  const spec = augmentSpec(config);
  return Array.from({ length: config.data.augment.cachedCopies }, (_, k) => ({
    flip: config.data.flip && k % 2 === 1,
    augment: { spec, seed: config.seed * 1000 + k + 1 },
  }));
}

/**
 * Load the dataset, build the backbone, and make a FeatureSource per split:
 * frozen backbones read (or fill) the feature cache, trainable ones decode images into memory.
 */
export async function prepareData(
  config: TrainConfig,
  dataDir: string | null,
  opts: {
    quiet?: boolean;
    runDir?: string;
    splits: SplitName[];
    backboneWeights?: Map<string, { shape: number[]; data: Float32Array }>;
  },
): Promise<PreparedData> {
  const root = await resolveDataDir(config, dataDir, opts.quiet);
  const dataset = await loadRunDataset(config, root);
  const cacheDir = resolveRepoPath(config.featureCacheDir);
  const { frozen, trainable } = await buildBackbone(config, { cacheDir, backboneWeights: opts.backboneWeights });
  const preprocess = (frozen ?? trainable)!.preprocess;
  // With both, the frozen bottom feeds the trainable top: the model sees the top's maps.
  const featureShape = (trainable ?? frozen)!.featureShape;
  const sources: PreparedData['sources'] = {};
  const itemsBySplit: Record<SplitName, DatasetItem[]> = { train: [], val: [], test: [], metrics: [] };
  const skipped: SkippedFile[] = [];
  const labelsOf = (items: DatasetItem[]) => Int32Array.from(items, (it) => it.label);

  for (const split of opts.splits) {
    const items = dataset.splits[split];
    if (frozen) {
      const flip = split === 'train' && config.data.flip;
      const copies = split === 'train' ? augmentedViews(config) : [];
      // One pass decodes each image once for every view.
      const sets = await extractFeatureSets(frozen, items, {
        views: [ORIGINAL, ...(flip ? [MIRRORED] : []), ...copies],
        cacheDir,
        floatEncoding: config.featureCacheEncoding,
        progressLabel: `features ${split}`,
        quiet: opts.quiet,
      });
      const orig = sets[0];
      const mirrored = flip ? sets[1] : null;
      const augmented = sets.slice(flip ? 2 : 1);
      skipped.push(...orig.skipped);
      const keep = items.map((_, i) => i).filter((i) => sets.every((set) => set.valid[i]));
      const kept = keep.map((i) => items[i]);
      itemsBySplit[split] = kept;
      const shared = (store: typeof orig.store): SharedStore => ({
        spec: { n: store.n, shape: store.shape, encoding: store.encoding, quantization: store.quantization },
        data: store.data,
      });
      const cached = sharedFeatureSource({
        orig: shared(orig.store),
        flip: mirrored ? shared(mirrored.store) : null,
        augmented: augmented.map((set) => shared(set.store)),
        keep: Int32Array.from(keep),
        labels: labelsOf(kept),
      });
      sources[split] = trainable ? throughBackbone(cached, trainable) : cached;
    } else {
      const size = preprocess.size;
      const decoded = await decodeMany(items, size, {});
      skipped.push(...decoded.skipped);
      const keep = items.map((_, i) => i).filter((i) => decoded.images[i] !== null);
      const kept = keep.map((i) => items[i]);
      itemsBySplit[split] = kept;
      const spec = split === 'train' && config.data.augment.enabled ? augmentSpec(config) : null;
      // In shared memory, where gradient workers read them too.
      const images = packImages(keep.map((i) => decoded.images[i]!));
      sources[split] = sharedImageSource({ images, labels: labelsOf(kept), preprocess, augment: spec }, trainable!);
    }
  }
  return {
    dataset,
    featureShape,
    preprocess,
    itemsBySplit,
    sources,
    trainableBackbone: trainable,
    frozenBackbone: frozen,
    skipped,
  };
}

/**
 * The dataset, the frozen backbone and every item of each split, without a
 * single feature: for work that needs the items but not their features (an edit
 * refitting the last layer on cached similarities, whose key hashes the item ids
 * and so confirms the list; a bundle reusing its parent's pictures). Images that
 * cannot be decoded are not found here (prepareData finds them). Null for a
 * trainable backbone, whose features come from the images.
 */
export async function prepareItems(
  config: TrainConfig,
  dataDir: string | null,
  opts: { quiet?: boolean },
): Promise<PreparedData | null> {
  if (config.backbone.kind === 'small-cnn' || config.backbone.trainable) return null;
  const root = await resolveDataDir(config, dataDir, opts.quiet);
  const dataset = await loadRunDataset(config, root);
  const { frozen } = await buildBackbone(config, { cacheDir: resolveRepoPath(config.featureCacheDir) });
  if (!frozen) return null;
  return {
    dataset,
    featureShape: frozen.featureShape,
    preprocess: frozen.preprocess,
    itemsBySplit: { ...dataset.splits },
    sources: {},
    trainableBackbone: null,
    frozenBackbone: frozen,
    skipped: [],
  };
}

import { join, resolve } from 'node:path';
import { findCubOfficialBase, loadCubOfficial } from './cub-official.ts';
import { loadCubCropped } from './cub-cropped.ts';
import { DatasetError } from './errors.ts';
import { loadFolder } from './folder.ts';
import { isDirectory, isFile } from './fs-probe.ts';
import { listSubdirs } from './image-files.ts';
import { holdOutValidation } from './split.ts';
import { SYNTHETIC_MANIFEST } from './synthetic-manifest.ts';
import { loadSynthetic } from './synthetic-dataset.ts';
import type { Dataset } from './types.ts';

export interface LoadDatasetOptions {
  /** Training images per class held out as validation (ignored if the dataset has a val split). */
  valPerClass: number;
  /** Further training images per class held out for explanation metrics only (the 'metrics' split). Default 0. */
  metricsPerClass?: number;
  seed: number;
}

const EXPECTED_LAYOUTS = [
  'CUB-200-2011 as distributed (images/ + images.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt, classes.txt; or a CUB_200_2011/ folder holding them)',
  'pre-cropped CUB (train_cropped/NNN.Name/*.jpg, optional test_cropped/)',
  `a synthetic dataset (${SYNTHETIC_MANIFEST} + train/ + test/)`,
  'one folder per class (optionally inside train/, val/, test/)',
].join('; ');

/**
 * Load a dataset, detecting its layout, and hold out `valPerClass` training images per
 * class as validation unless the dataset brings its own val split.
 */
export async function loadDataset(root: string, opts: LoadDatasetOptions): Promise<Dataset> {
  const abs = resolve(root);
  if (!(await isDirectory(abs))) {
    throw new DatasetError('dataset folder does not exist', {
      file: abs,
      fix: `point at a folder holding one of: ${EXPECTED_LAYOUTS}`,
    });
  }
  const ds = await loadByLayout(abs);
  if (ds.splits.val.length === 0) {
    const { train, val } = holdOutValidation(
      ds.splits.train,
      ds.classes.length,
      opts.valPerClass,
      opts.seed,
      ds.classes,
    );
    ds.splits.train = train;
    ds.splits.val = val;
  }
  const metricsPerClass = opts.metricsPerClass ?? 0;
  if (metricsPerClass > 0) {
    // A second, independent draw from what is left: validation images stay the same whatever metricsPerClass is.
    const { train, val: held } = holdOutValidation(
      ds.splits.train,
      ds.classes.length,
      metricsPerClass,
      opts.seed + 1,
      ds.classes,
      'metricsPerClass',
    );
    ds.splits.train = train;
    ds.splits.metrics = held;
  }
  return ds;
}

async function loadByLayout(root: string): Promise<Dataset> {
  if (await isFile(join(root, SYNTHETIC_MANIFEST))) return loadSynthetic(root);
  if ((await findCubOfficialBase(root)) !== null) return loadCubOfficial(root);
  if (await isDirectory(join(root, 'train_cropped'))) return loadCubCropped(root);
  if ((await listSubdirs(root)).length > 0) return loadFolder(root);
  throw new DatasetError('no known dataset layout found', { file: root, fix: `expected one of: ${EXPECTED_LAYOUTS}` });
}

/** One line, e.g. "cub-cropped at /data/cub200: 200 classes, 4994 train / 1000 val / 0 test images, 0 skipped". */
export function describeDataset(ds: Dataset): string {
  const { train, val, test, metrics } = ds.splits;
  const held = metrics.length ? ` / ${metrics.length} metrics` : '';
  return (
    `${ds.layout} at ${ds.root}: ${ds.classes.length} classes, ` +
    `${train.length} train / ${val.length} val / ${test.length} test${held} images, ${ds.skipped.length} skipped`
  );
}

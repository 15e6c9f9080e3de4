/** One labelled image of a dataset, before decoding. */
export interface DatasetItem {
  /** Stable id, unique in the dataset (e.g. CUB image id or relative path). */
  id: string;
  /** Absolute path of the image file. */
  path: string;
  /** Index into Dataset.classes. */
  label: number;
  /** Optional crop (x, y, w, h) in pixels of the original image, applied on decode (CUB official layout). */
  box?: [number, number, number, number];
}

/**
 * 'metrics': training-split images held out for explanation metrics only (data.metricsPerClass):
 * nothing is trained on them and no choice is made on them, unlike 'val'.
 */
export type SplitName = 'train' | 'val' | 'test' | 'metrics';

/** A dataset as loaded from disk: class names and the three splits. */
export interface Dataset {
  /** Human-readable layout name: 'cub-official' | 'cub-cropped' | 'folder' | 'synthetic'. */
  layout: string;
  root: string;
  classes: string[];
  splits: Record<SplitName, DatasetItem[]>;
  /** Files rejected at listing time (not images etc.), with the reason. */
  skipped: SkippedFile[];
}

export interface SkippedFile {
  path: string;
  reason: string;
}

/** A decoded image: packed RGB bytes, row-major HWC. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** How pixels become backbone input. */
export interface PreprocessSpec {
  /** Square input side in pixels (224 for MobileNetV2). */
  size: number;
  /** Per-channel mean and std applied to values in [0,1]; e.g. ImageNet, or [0.5]/[0.5] for [-1,1]. */
  mean: [number, number, number];
  std: [number, number, number];
}

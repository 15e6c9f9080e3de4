/** How an image becomes model input; stored in the bundle so every runtime agrees. */
export interface Preprocessing {
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
}

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

/** ImageNet normalisation at 224x224, as the ONNX MobileNetV2 expects. */
export const IMAGENET_224: Preprocessing = { size: 224, mean: IMAGENET_MEAN, std: IMAGENET_STD };

/** Inputs scaled to [-1, 1], as Keras MobileNetV2 expects. */
export const SYMMETRIC_224: Preprocessing = { size: 224, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

/** Normalise packed RGB bytes (HWC) into float32 HWC with the given mean/std. */
export function normalizeRgb(
  rgb: Uint8Array,
  pre: Pick<Preprocessing, 'mean' | 'std'>,
  out?: Float32Array,
): Float32Array {
  const res = out ?? new Float32Array(rgb.length);
  const [m0, m1, m2] = pre.mean;
  const [s0, s1, s2] = pre.std;
  for (let i = 0; i < rgb.length; i += 3) {
    res[i] = (rgb[i] / 255 - m0) / s0;
    res[i + 1] = (rgb[i + 1] / 255 - m1) / s1;
    res[i + 2] = (rgb[i + 2] / 255 - m2) / s2;
  }
  return res;
}

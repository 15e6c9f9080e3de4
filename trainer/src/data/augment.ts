import { Rng } from '../core/rng.ts';
import { toNHWC } from './decode.ts';
import type { PreprocessSpec, RgbImage } from './types.ts';

/**
 * Online augmentation for training with a trainable backbone, after the
 * paper's Augmentor pipeline: rotation, perspective skew, shear, flips (the
 * flip is drawn by the caller), plus random crops. All of it is one
 * homography per image, sampled bilinearly, so an image is resampled once.
 */
export interface AugmentSpec {
  /** Max rotation, degrees (paper: 15). */
  rotation: number;
  /** Max shear, degrees (paper: 10). */
  shear: number;
  /** Max perspective skew: each corner moves up to this fraction of the side (Augmentor's magnitude). */
  skew: number;
  /** Smallest crop side, as a fraction of the image side (1 = no crop). */
  cropScale: number;
  /** Probability of each transform being applied (Augmentor applies each with some probability). */
  probability: number;
  /**
   * Std of Gaussian noise added to every value of the normalised input, clipped at NOISE_CLIP_RATIO times it
   * (Huang et al.'s stability test perturbs images this way: 0.2, clipped at 0.25). Absent or 0: none.
   */
  noise?: number;
}

/** Huang et al. clip their N(0, 0.2) input noise at 0.25. */
export const NOISE_CLIP_RATIO = 1.25;

/** Adds N(0, std) noise clipped to +-clip to x[start..end), in place, drawing from `rng` in index order. */
export function addClippedNoiseInPlace(
  x: Float32Array,
  rng: Rng,
  std: number,
  clip: number,
  start = 0,
  end = x.length,
): void {
  for (let i = start; i < end; i++) x[i] += Math.min(clip, Math.max(-clip, rng.normal() * std));
}

export const PAPER_AUGMENT: AugmentSpec = { rotation: 15, shear: 10, skew: 0.2, cropScale: 0.8, probability: 0.5 };

export type Mat3 = [number, number, number, number, number, number, number, number, number];

const mul = (a: Mat3, b: Mat3): Mat3 => {
  const r = new Array<number>(9).fill(0) as Mat3;
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) r[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
  return r;
};
const translate = (x: number, y: number): Mat3 => [1, 0, x, 0, 1, y, 0, 0, 1];
const rotate = (rad: number): Mat3 => [Math.cos(rad), -Math.sin(rad), 0, Math.sin(rad), Math.cos(rad), 0, 0, 0, 1];
const shearX = (rad: number): Mat3 => [1, Math.tan(rad), 0, 0, 1, 0, 0, 0, 1];
const scale = (s: number): Mat3 => [s, 0, 0, 0, s, 0, 0, 0, 1];

/** The homography taking 4 source points to 4 destination points (direct linear solve, 8x8). */
export function homography(src: [number, number][], dst: [number, number][]): Mat3 {
  const A: number[][] = [];
  const b: number[] = [];
  for (let i = 0; i < 4; i++) {
    const [x, y] = src[i];
    const [u, v] = dst[i];
    A.push([x, y, 1, 0, 0, 0, -u * x, -u * y]);
    b.push(u);
    A.push([0, 0, 0, x, y, 1, -v * x, -v * y]);
    b.push(v);
  }
  // Gaussian elimination with partial pivoting.
  for (let c = 0; c < 8; c++) {
    let p = c;
    for (let r = c + 1; r < 8; r++) if (Math.abs(A[r][c]) > Math.abs(A[p][c])) p = r;
    [A[c], A[p]] = [A[p], A[c]];
    [b[c], b[p]] = [b[p], b[c]];
    if (Math.abs(A[c][c]) < 1e-12) throw new Error('homography: degenerate corner points');
    for (let r = c + 1; r < 8; r++) {
      const f = A[r][c] / A[c][c];
      for (let k = c; k < 8; k++) A[r][k] -= f * A[c][k];
      b[r] -= f * b[c];
    }
  }
  const h = new Array<number>(8).fill(0);
  for (let r = 7; r >= 0; r--) {
    let s = b[r];
    for (let k = r + 1; k < 8; k++) s -= A[r][k] * h[k];
    h[r] = s / A[r][r];
  }
  return [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 1];
}

/**
 * Random output->input mapping for one image of side n: a crop (zoom and shift),
 * a rotation and a shear about the centre, and a perspective skew.
 */
export function randomTransform(n: number, spec: AugmentSpec, rng: Rng): Mat3 {
  const c = n / 2;
  const apply = () => rng.next() < spec.probability;
  let m: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  // Built as output -> input: a crop shows a smaller input region, so it scales down.
  if (spec.cropScale < 1 && apply()) {
    const s = spec.cropScale + (1 - spec.cropScale) * rng.next();
    const slack = (1 - s) * n;
    const dx = (rng.next() - 0.5) * slack;
    const dy = (rng.next() - 0.5) * slack;
    m = mul(translate(c + dx, c + dy), mul(scale(s), translate(-c, -c)));
  }
  if (spec.rotation > 0 && apply()) {
    const a = ((rng.next() * 2 - 1) * spec.rotation * Math.PI) / 180;
    m = mul(m, mul(translate(c, c), mul(rotate(a), translate(-c, -c))));
  }
  if (spec.shear > 0 && apply()) {
    const a = ((rng.next() * 2 - 1) * spec.shear * Math.PI) / 180;
    const t = rng.next() < 0.5 ? shearX(a) : ([1, 0, 0, Math.tan(a), 1, 0, 0, 0, 1] as Mat3);
    m = mul(m, mul(translate(c, c), mul(t, translate(-c, -c))));
  }
  if (spec.skew > 0 && apply()) {
    const corners: [number, number][] = [
      [0, 0],
      [n, 0],
      [n, n],
      [0, n],
    ];
    // Tilt one side (Augmentor's "TILT" skews): its two corners move inwards.
    const side = rng.int(4);
    const d = rng.next() * spec.skew * n;
    const moved = corners.map(([x, y], i): [number, number] => {
      const onSide = i === side || i === (side + 1) % 4;
      if (!onSide) return [x, y];
      return side % 2 === 0 ? [x + (x < c ? d : -d), y] : [x, y + (y < c ? d : -d)];
    });
    m = mul(m, homography(corners, moved));
  }
  return m;
}

/** The inverse of a homography (adjugate over determinant). */
export function invertTransform(m: Mat3): Mat3 {
  const [a, b, c, d, e, f, g, h, i] = m;
  const A = e * i - f * h;
  const B = c * h - b * i;
  const C = b * f - c * e;
  const det = a * A + d * B + g * C;
  if (Math.abs(det) < 1e-12) throw new Error('invertTransform: singular transform');
  const adj = [A, B, C, f * g - d * i, a * i - c * g, c * d - a * f, d * h - e * g, b * g - a * h, a * e - b * d];
  return adj.map((v) => v / det) as Mat3;
}

/** Maps a point of an image's input (continuous pixels) to where it lies in one augmented view, or null when cropped out. */
export type PointMap = (x: number, y: number) => [number, number] | null;

/**
 * Where points of a square image of side `side` land in its augmented view drawn from `seed` (the draw
 * augmentedInput makes from `new Rng(seed)`), in the coordinates of an input of side `inputSize`, mirrored
 * when `flip`. Points the view crops out map to null.
 */
export function augmentedPointMap(
  side: number,
  spec: AugmentSpec,
  seed: number,
  inputSize: number,
  flip: boolean,
): PointMap {
  // warp samples input m·p for output p (continuous pixels), so a point moves by the inverse.
  const inv = invertTransform(randomTransform(side, spec, new Rng(seed)));
  const s = side / inputSize;
  return (x, y) => {
    const [px, py] = [x * s, y * s];
    const z = inv[6] * px + inv[7] * py + inv[8];
    const u = (inv[0] * px + inv[1] * py + inv[2]) / z;
    const v = (inv[3] * px + inv[4] * py + inv[5]) / z;
    if (!(z > 0) || u < 0 || v < 0 || u > side || v > side) return null;
    return [(flip ? side - u : u) / s, v / s];
  };
}

/** Resample `img` through the output->input mapping `m` (bilinear, edges clamped), optionally mirrored. */
export function warp(img: RgbImage, m: Mat3, flip = false): RgbImage {
  const { width: w, height: h, data } = img;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x0 = 0; x0 < w; x0++) {
      const x = flip ? w - 1 - x0 : x0;
      const px = x + 0.5;
      const py = y + 0.5;
      const z = m[6] * px + m[7] * py + m[8];
      const sx = Math.min(w - 1, Math.max(0, (m[0] * px + m[1] * py + m[2]) / z - 0.5));
      const sy = Math.min(h - 1, Math.max(0, (m[3] * px + m[4] * py + m[5]) / z - 0.5));
      const ix = Math.floor(sx);
      const iy = Math.floor(sy);
      const fx = sx - ix;
      const fy = sy - iy;
      const ix1 = Math.min(w - 1, ix + 1);
      const iy1 = Math.min(h - 1, iy + 1);
      const o = (y * w + x0) * 3;
      for (let ch = 0; ch < 3; ch++) {
        const a = data[(iy * w + ix) * 3 + ch];
        const b = data[(iy * w + ix1) * 3 + ch];
        const c = data[(iy1 * w + ix) * 3 + ch];
        const d = data[(iy1 * w + ix1) * 3 + ch];
        out[o + ch] = Math.round(a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy);
      }
    }
  }
  return { width: w, height: h, data: out };
}

/** One augmented copy of a square training image. */
export function augmentImage(img: RgbImage, spec: AugmentSpec, rng: Rng, flip = false): RgbImage {
  if (img.width !== img.height)
    throw new Error(`augmentImage: expected a square image, got ${img.width}x${img.height}`);
  return warp(img, randomTransform(img.width, spec, rng), flip);
}

/** One augmented copy as a normalised NHWC input: the transform, then the input noise, both drawn from `rng`. */
export function augmentedInput(
  img: RgbImage,
  spec: AugmentSpec,
  rng: Rng,
  flip: boolean,
  pre: PreprocessSpec,
): Float32Array {
  const x = toNHWC([augmentImage(img, spec, rng, flip)], pre, false);
  if (spec.noise) addClippedNoiseInPlace(x, rng, spec.noise, spec.noise * NOISE_CLIP_RATIO);
  return x;
}

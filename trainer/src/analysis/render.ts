import { colormap, upsampleBicubic, type Box } from '@protoatlas/shared';
import sharp from 'sharp';
import type { RgbImage } from '../data/types.ts';

/**
 * The pictures of explanations: crops, boxes and heatmaps as small lossy WebP.
 * Drawing is done on raw pixels (no SVG, so no font or librsvg dependency and
 * exact, testable coordinates); sharp only resizes and encodes.
 */

/** Default longest side of a prototype crop. */
export const CROP_MAX_SIDE = 128;
/** Default longest side of a nearest-patch crop (five per prototype, shown small). */
export const PATCH_MAX_SIDE = 88;
/** Default longest side of a whole image with a box, and of a heatmap. */
export const SOURCE_MAX_SIDE = 224;
/**
 * WebP settings, measured with trainer/bench/render-sizes.ts on CUB photos:
 * q80 keeps feathers crisp while a prototype's eight pictures average ~14 KB
 * (~19 KB from 448 px originals), about half the 30 KB budget. Effort 2 encodes
 * ~1.5x faster than the default 4 for files ~4% larger; smart chroma subsampling
 * doubled the encode time for no visible gain on a 3 px box.
 */
export const WEBP_OPTIONS = { quality: 80, effort: 2, smartSubsample: false } as const;

/** Box stroke: yellow as in the paper's figures, with a dark halo so it shows on pale plumage. */
const BOX_COLOUR: Rgb = [255, 221, 0];
const HALO_COLOUR: Rgb = [20, 20, 20];
/** Receptive field: cyan, dashed, thinner, so it never reads as the box itself. */
const RF_COLOUR: Rgb = [0, 200, 255];

type Rgb = [number, number, number];

export interface CropOptions {
  maxSide?: number;
}

export interface SourceOptions {
  maxSide?: number;
  /** Drawn as a thinner dashed cyan rectangle under the box. */
  receptiveField?: Box | null;
}

export interface HeatmapOptions {
  maxSide?: number;
  /** Weight of the colour map over the image, 0..1 (default 0.4). */
  opacity?: number;
  box?: Box;
}

/** The box region, downscaled so its longer side is at most maxSide (never enlarged). */
export async function renderCrop(image: RgbImage, box: Box, opts: CropOptions = {}): Promise<Buffer> {
  checkImage(image);
  checkBox(box, image, 'box');
  const maxSide = checkMaxSide(opts.maxSide ?? CROP_MAX_SIDE);
  return rawInput(image)
    .extract({ left: box.x, top: box.y, width: box.w, height: box.h })
    .resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true })
    .webp(WEBP_OPTIONS)
    .toBuffer();
}

/** The whole image, downscaled, with the box (and the receptive field, if given) drawn on it. */
export async function renderSourceWithBox(image: RgbImage, box: Box, opts: SourceOptions = {}): Promise<Buffer> {
  checkImage(image);
  checkBox(box, image, 'box');
  if (opts.receptiveField) checkBox(opts.receptiveField, image, 'receptiveField');
  const small = await downscale(image, checkMaxSide(opts.maxSide ?? SOURCE_MAX_SIDE));
  if (opts.receptiveField)
    drawRect(small, scaleBox(opts.receptiveField, image, small), RF_COLOUR, strokeWidth(small) - 1, null, 6);
  drawBox(small, scaleBox(box, image, small));
  return encode(small);
}

/**
 * A low-resolution activation map (larger = more similar) upsampled bicubically
 * to the picture, normalised min..max, coloured and blended over the image.
 */
export async function renderHeatmap(
  image: RgbImage,
  activation: ArrayLike<number>,
  mapH: number,
  mapW: number,
  opts: HeatmapOptions = {},
): Promise<Buffer> {
  checkImage(image);
  if (!isPositiveInt(mapH) || !isPositiveInt(mapW))
    throw new RangeError(`renderHeatmap: map size ${mapW}x${mapH} must be positive integers`);
  if (activation.length !== mapH * mapW)
    throw new RangeError(
      `renderHeatmap: activation has ${activation.length} values, expected ${mapH}x${mapW} = ${mapH * mapW}`,
    );
  for (let i = 0; i < activation.length; i++) {
    if (!Number.isFinite(activation[i]))
      throw new RangeError(`renderHeatmap: activation[${i}] is ${activation[i]}, expected a finite number`);
  }
  const opacity = opts.opacity ?? 0.4;
  if (!(opacity >= 0 && opacity <= 1)) throw new RangeError(`renderHeatmap: opacity ${opacity} must be within 0..1`);
  if (opts.box) checkBox(opts.box, image, 'box');
  const small = await downscale(image, checkMaxSide(opts.maxSide ?? SOURCE_MAX_SIDE));
  blendHeat(small, upsampleBicubic(activation, mapH, mapW, small.height, small.width), opacity);
  if (opts.box) drawBox(small, scaleBox(opts.box, image, small));
  return encode(small);
}

// ---------------------------------------------------------------- validation

function isPositiveInt(n: number): boolean {
  return Number.isInteger(n) && n > 0;
}

function checkImage(image: RgbImage): void {
  const { width, height, data } = image;
  if (!isPositiveInt(width) || !isPositiveInt(height))
    throw new RangeError(`image size ${width}x${height} must be positive integers`);
  if (data.length !== width * height * 3)
    throw new RangeError(
      `image data holds ${data.length} bytes, expected ${width}x${height}x3 = ${width * height * 3}`,
    );
}

function checkBox(box: Box, image: RgbImage, name: string): void {
  const { x, y, w, h } = box;
  const text = `${name} {x: ${x}, y: ${y}, w: ${w}, h: ${h}}`;
  if (![x, y, w, h].every(Number.isInteger)) throw new RangeError(`${text} must have integer coordinates`);
  if (w < 1 || h < 1) throw new RangeError(`${text} must have a positive size`);
  if (x < 0 || y < 0 || x + w > image.width || y + h > image.height) {
    throw new RangeError(`${text} is not inside the ${image.width}x${image.height} image`);
  }
}

function checkMaxSide(n: number): number {
  if (!isPositiveInt(n)) throw new RangeError(`maxSide ${n} must be a positive integer`);
  return n;
}

// ---------------------------------------------------------------- sharp I/O

function rawInput(image: RgbImage): ReturnType<typeof sharp> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } });
}

/** The image with its longer side at most maxSide, as raw RGB we can draw on. */
async function downscale(image: RgbImage, maxSide: number): Promise<RgbImage> {
  if (image.width <= maxSide && image.height <= maxSide)
    return { width: image.width, height: image.height, data: Uint8Array.from(image.data) };
  const { data, info } = await rawInput(image)
    .resize(maxSide, maxSide, { fit: 'inside' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

function encode(image: RgbImage): Promise<Buffer> {
  return rawInput(image).webp(WEBP_OPTIONS).toBuffer();
}

// ---------------------------------------------------------------- drawing

/** Box edges in output pixels: the outer edge stays on the box's outer edge after scaling. */
function scaleBox(box: Box, from: RgbImage, to: RgbImage): Box {
  const sx = to.width / from.width;
  const sy = to.height / from.height;
  const x = Math.min(to.width - 1, Math.floor(box.x * sx));
  const y = Math.min(to.height - 1, Math.floor(box.y * sy));
  const x1 = Math.max(x + 1, Math.min(to.width, Math.ceil((box.x + box.w) * sx)));
  const y1 = Math.max(y + 1, Math.min(to.height, Math.ceil((box.y + box.h) * sy)));
  return { x, y, w: x1 - x, h: y1 - y };
}

/** 3 px at the default 224 output, never under 2 (lossy chroma smears a 1 px line). */
function strokeWidth(image: RgbImage): number {
  return Math.max(2, Math.round(Math.max(image.width, image.height) / 75));
}

function drawBox(image: RgbImage, box: Box): void {
  drawRect(image, box, BOX_COLOUR, strokeWidth(image), HALO_COLOUR, 0);
}

/**
 * A rectangle stroked inside `box` (so the stroke marks the box's own pixels),
 * with an optional 1 px halo just outside it; `dash` > 0 draws dashes that long.
 */
function drawRect(image: RgbImage, box: Box, colour: Rgb, width: number, halo: Rgb | null, dash: number): void {
  const t = Math.max(1, Math.min(width, Math.ceil(box.w / 2), Math.ceil(box.h / 2)));
  const x0 = box.x;
  const y0 = box.y;
  const x1 = box.x + box.w - 1;
  const y1 = box.y + box.h - 1;
  if (halo) {
    hline(image, x0 - 1, x1 + 1, y0 - 1, halo, 0);
    hline(image, x0 - 1, x1 + 1, y1 + 1, halo, 0);
    vline(image, x0 - 1, y0 - 1, y1 + 1, halo, 0);
    vline(image, x1 + 1, y0 - 1, y1 + 1, halo, 0);
  }
  for (let k = 0; k < t; k++) {
    hline(image, x0, x1, y0 + k, colour, dash);
    hline(image, x0, x1, y1 - k, colour, dash);
    vline(image, x0 + k, y0, y1, colour, dash);
    vline(image, x1 - k, y0, y1, colour, dash);
  }
}

function hline(image: RgbImage, xa: number, xb: number, y: number, c: Rgb, dash: number): void {
  if (y < 0 || y >= image.height) return;
  for (let x = Math.max(0, xa); x <= Math.min(image.width - 1, xb); x++) {
    if (dash === 0 || Math.floor((x - xa) / dash) % 2 === 0) image.data.set(c, (y * image.width + x) * 3);
  }
}

function vline(image: RgbImage, x: number, ya: number, yb: number, c: Rgb, dash: number): void {
  if (x < 0 || x >= image.width) return;
  for (let y = Math.max(0, ya); y <= Math.min(image.height - 1, yb); y++) {
    if (dash === 0 || Math.floor((y - ya) / dash) % 2 === 0) image.data.set(c, (y * image.width + x) * 3);
  }
}

/** 256-entry colour table: one colormap call per level instead of per pixel. */
const HEAT_LUT: Uint8Array = (() => {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) lut.set(colormap(i / 255), i * 3);
  return lut;
})();

/** In place: image = (1 - opacity) * image + opacity * colormap(normalised heat). */
function blendHeat(image: RgbImage, heat: Float32Array, opacity: number): void {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < heat.length; i++) {
    lo = Math.min(lo, heat[i]);
    hi = Math.max(hi, heat[i]);
  }
  // A flat map carries no "where": show it all at the cold end rather than divide by zero.
  const scale = hi > lo ? 255 / (hi - lo) : 0;
  const d = image.data;
  for (let i = 0; i < heat.length; i++) {
    const l = Math.round((heat[i] - lo) * scale) * 3;
    const o = i * 3;
    for (let c = 0; c < 3; c++) d[o + c] = Math.round((1 - opacity) * d[o + c] + opacity * HEAT_LUT[l + c]);
  }
}

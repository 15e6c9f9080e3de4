import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { ImageDecodeError } from './errors.ts';
import type { DatasetItem, PreprocessSpec, RgbImage, SkippedFile } from './types.ts';

export interface DecodeOptions {
  /** Crop (x, y, w, h) in pixels of the stored image; floats allowed, clamped to the image. */
  box?: [number, number, number, number];
  /** Resize the (cropped) image to size x size, ignoring aspect ratio as the ProtoPNet paper does. */
  size?: number;
  /** Apply the EXIF orientation first (photos from phones); off for datasets, whose boxes refer to stored pixels. */
  orient?: boolean;
}

/**
 * Decode one image file to 8-bit sRGB RGB. Greyscale, CMYK, 16-bit and alpha images
 * all come out as 3 channels (alpha is flattened on white). No EXIF auto-rotation:
 * CUB's boxes refer to the pixels as stored, and the paper's PIL pipeline does not rotate.
 * Throws ImageDecodeError for empty, truncated, corrupt or non-image files.
 */
export async function decodeImage(path: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ImageDecodeError(path, `cannot read file (${errorText(e)})`);
  }
  if (bytes.length === 0) throw new ImageDecodeError(path, 'empty file (0 bytes)');
  try {
    // 'truncated' makes libjpeg's "premature end of data" fatal instead of padding grey.
    const img = sharp(bytes, { failOn: 'truncated' });
    if (opts.orient) img.autoOrient();
    if (opts.box) {
      const meta = await img.metadata();
      img.extract(clampBox(path, opts.box, meta.width, meta.height));
    }
    if (opts.size !== undefined) img.resize(opts.size, opts.size, { fit: 'fill' });
    const { data, info } = await img
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new ImageDecodeError(path, `decoded to ${info.channels} channels, expected 3`);
    }
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    throw new ImageDecodeError(path, errorText(e));
  }
}

/** Integer crop region covering the float box, clamped to the image. */
function clampBox(
  path: string,
  box: [number, number, number, number],
  width: number | undefined,
  height: number | undefined,
): { left: number; top: number; width: number; height: number } {
  if (!width || !height) throw new ImageDecodeError(path, 'image has no dimensions');
  const [x, y, w, h] = box;
  const left = Math.min(Math.max(0, Math.floor(x)), width);
  const top = Math.min(Math.max(0, Math.floor(y)), height);
  const right = Math.min(width, Math.max(0, Math.ceil(x + w)));
  const bottom = Math.min(height, Math.max(0, Math.ceil(y + h)));
  if (right - left < 1 || bottom - top < 1) {
    throw new ImageDecodeError(path, `box [${box.join(', ')}] lies outside the ${width}x${height} image`);
  }
  return { left, top, width: right - left, height: bottom - top };
}

function errorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // libvips keeps its error text per thread; under concurrent decodes sharp can
  // surface only "Unknown error", which in practice means corrupt pixel data.
  return /^unknown error$/i.test(msg.trim()) ? 'corrupt or truncated image data' : msg;
}

/**
 * Pack decoded images (each pre.size square) into one NHWC float batch:
 * value/255, minus mean, divided by std; `flip` mirrors every image left-right.
 */
export function toNHWC(images: RgbImage[], pre: PreprocessSpec, flip: boolean): Float32Array {
  const size = pre.size;
  const per = size * size * 3;
  const out = new Float32Array(images.length * per);
  const scale = [0, 1, 2].map((c) => 1 / (255 * pre.std[c]));
  const shift = [0, 1, 2].map((c) => -pre.mean[c] / pre.std[c]);
  images.forEach((img, n) => {
    if (img.width !== size || img.height !== size || img.data.length !== per) {
      throw new Error(
        `toNHWC: image ${n} is ${img.width}x${img.height}, expected ${size}x${size} RGB (decode with size ${size})`,
      );
    }
    const src = img.data;
    let o = n * per;
    for (let y = 0; y < size; y++) {
      const row = y * size;
      for (let x = 0; x < size; x++) {
        const s = (row + (flip ? size - 1 - x : x)) * 3;
        out[o++] = src[s] * scale[0] + shift[0];
        out[o++] = src[s + 1] * scale[1] + shift[1];
        out[o++] = src[s + 2] * scale[2] + shift[2];
      }
    }
  });
  return out;
}

export interface DecodeManyOptions {
  /** Images decoded at once (sharp runs them on libuv's thread pool). Default 8. */
  concurrency?: number;
  /** Called for each image that failed to decode (after the warning is printed). */
  onSkip?: (path: string, reason: string) => void;
  /** Called with the number of images just finished (always 1), so it can feed Progress.tick. */
  onProgress?: (n: number) => void;
}

/**
 * Decode many items to size x size (cropping to each item's box). Never throws for a bad
 * image: prints a warning naming the file, leaves null in its slot and records it in `skipped`.
 */
export async function decodeMany(
  items: DatasetItem[],
  size: number,
  opts: DecodeManyOptions = {},
): Promise<{ images: (RgbImage | null)[]; skipped: SkippedFile[] }> {
  const images: (RgbImage | null)[] = new Array(items.length).fill(null);
  const failures: (SkippedFile | null)[] = new Array(items.length).fill(null);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      const item = items[i];
      try {
        images[i] = await decodeImage(item.path, { box: item.box, size });
      } catch (e) {
        if (!(e instanceof ImageDecodeError)) throw e;
        failures[i] = { path: item.path, reason: e.reason };
        process.stderr.write(`warning: skipping unreadable image ${item.path}: ${e.reason}\n`);
        opts.onSkip?.(item.path, e.reason);
      }
      opts.onProgress?.(1);
    }
  };
  const workers = Math.max(1, Math.min(opts.concurrency ?? 8, items.length));
  await Promise.all(Array.from({ length: workers }, worker));
  // Collected by index so `skipped` is in item order however the decodes interleave.
  return { images, skipped: failures.filter((f): f is SkippedFile => f !== null) };
}

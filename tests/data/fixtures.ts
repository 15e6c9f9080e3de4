import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';

/** A fresh temporary folder; remove it with `cleanup`. */
export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `protoatlas-${prefix}-`));
}

export async function cleanup(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export async function writeText(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

/** A solid-colour image in the format given by the extension (.png / .jpg). */
export async function writeSolid(
  path: string,
  width: number,
  height: number,
  rgb: [number, number, number],
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const img = sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
  await (path.endsWith('.png') ? img.png() : img.jpeg()).toFile(path);
}

/** Lossless PNG whose pixel (x, y) is (5x, 5y, 77 + k): crops can be checked exactly. */
export async function writeGradientPng(path: string, width: number, height: number, k = 0): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await sharp(gradientPixels(width, height, k), { raw: { width, height, channels: 3 } })
    .png()
    .toFile(path);
}

export function gradientPixels(width: number, height: number, k = 0): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      data[o] = 5 * x;
      data[o + 1] = 5 * y;
      data[o + 2] = 77 + k;
    }
  }
  return data;
}

/** The RGB triple at (x, y) of packed RGB data. */
export function pixelAt(img: { width: number; data: Uint8Array }, x: number, y: number): [number, number, number] {
  const o = (y * img.width + x) * 3;
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
}

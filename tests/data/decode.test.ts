import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage, decodeMany, toNHWC } from '../../trainer/src/data/decode.ts';
import { ImageDecodeError } from '../../trainer/src/data/errors.ts';
import { loadDataset } from '../../trainer/src/data/load-dataset.ts';
import type { Dataset } from '../../trainer/src/data/types.ts';
import { cleanup, pixelAt, tempDir, writeSolid } from './fixtures.ts';

let root: string;
let ds: Dataset;

/** A folder dataset with three broken files and four awkward-but-valid encodings. */
beforeAll(async () => {
  root = await tempDir('bad-images');
  const bad = join(root, 'bad');
  const odd = join(root, 'odd');
  // A noisy JPEG cut in half: enough bytes for the header, not for the scan data.
  const noise = new Uint8Array(64 * 64 * 3).map((_, i) => (i * 7919) % 251);
  const jpeg = await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } })
    .jpeg()
    .toBuffer();
  await mkdir(bad, { recursive: true });
  await mkdir(odd, { recursive: true });
  await writeFile(join(bad, 'truncated.jpg'), jpeg.subarray(0, jpeg.length >> 1));
  await writeFile(join(bad, 'zero.jpg'), new Uint8Array(0));
  await writeFile(join(bad, 'text.jpg'), 'this is not a JPEG at all\n');
  await writeFile(join(bad, 'notes.txt'), 'listing-time skip\n');
  await sharp({ create: { width: 20, height: 10, channels: 3, background: { r: 255, g: 0, b: 0 } } })
    .toColourspace('cmyk')
    .jpeg()
    .toFile(join(odd, 'cmyk.jpg'));
  await sharp({ create: { width: 20, height: 10, channels: 3, background: { r: 0, g: 128, b: 255 } } })
    .toColourspace('rgb16')
    .png()
    .toFile(join(odd, 'deep16.png'));
  await sharp({ create: { width: 20, height: 10, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0 } } })
    .png()
    .toFile(join(odd, 'rgba.png'));
  await sharp({ create: { width: 20, height: 10, channels: 3, background: { r: 100, g: 100, b: 100 } } })
    .toColourspace('b-w')
    .jpeg()
    .toFile(join(odd, 'grey.jpg'));
  ds = await loadDataset(root, { valPerClass: 0, seed: 0 });
});

afterAll(() => cleanup(root));

describe('fixtures are what they claim', () => {
  it('has CMYK, 16-bit, alpha and greyscale encodings', async () => {
    expect((await sharp(join(root, 'odd', 'cmyk.jpg')).metadata()).space).toBe('cmyk');
    expect((await sharp(join(root, 'odd', 'deep16.png')).metadata()).depth).toBe('ushort');
    expect((await sharp(join(root, 'odd', 'rgba.png')).metadata()).channels).toBe(4);
    expect((await sharp(join(root, 'odd', 'grey.jpg')).metadata()).channels).toBe(1);
  });
});

describe('decodeMany on a folder with bad files', () => {
  it('lists the dataset and skips the non-image extension at listing time', () => {
    expect(ds.layout).toBe('folder');
    expect(ds.classes).toEqual(['bad', 'odd']);
    expect(ds.splits.train.map((i) => i.id)).toEqual([
      'bad/text.jpg',
      'bad/truncated.jpg',
      'bad/zero.jpg',
      'odd/cmyk.jpg',
      'odd/deep16.png',
      'odd/grey.jpg',
      'odd/rgba.png',
    ]);
    expect(ds.skipped).toHaveLength(1);
    expect(ds.skipped[0].path).toBe(join(root, 'bad', 'notes.txt'));
  });

  it('skips the three broken files with reasons and decodes the rest to RGB', async () => {
    const seen: string[] = [];
    let progress = 0;
    const { images, skipped } = await decodeMany(ds.splits.train, 16, {
      concurrency: 3,
      onSkip: (path) => seen.push(path),
      onProgress: (n) => (progress += n),
    });
    expect(progress).toBe(7);
    expect(skipped.map((s) => s.path)).toEqual(
      ['text.jpg', 'truncated.jpg', 'zero.jpg'].map((f) => join(root, 'bad', f)),
    );
    expect(seen.sort()).toEqual(skipped.map((s) => s.path).sort());
    expect(skipped[0].reason).toMatch(/unsupported image format/);
    expect(skipped[1].reason).toMatch(/premature end|corrupt or truncated/i);
    expect(skipped[2].reason).toMatch(/empty file/);
    expect(images.slice(0, 3)).toEqual([null, null, null]);

    const [cmyk, deep16, grey, rgba] = images.slice(3);
    for (const img of [cmyk, deep16, grey, rgba]) {
      expect(img).not.toBeNull();
      expect(img!.width).toBe(16);
      expect(img!.height).toBe(16);
      expect(img!.data.length).toBe(16 * 16 * 3);
    }
    const [r, g, b] = pixelAt(cmyk!, 8, 5);
    expect(r).toBeGreaterThan(215);
    expect(g).toBeLessThan(40);
    expect(b).toBeLessThan(40);
    expectNear(pixelAt(deep16!, 3, 3), [0, 128, 255], 1); // 16-bit 0x8080 may land on 127 or 128
    expect(pixelAt(rgba!, 3, 3)).toEqual([255, 255, 255]); // transparent red flattens on white
    const grey33 = pixelAt(grey!, 3, 3);
    expect(grey33[0]).toBe(grey33[1]);
    expect(grey33[1]).toBe(grey33[2]);
    expect(Math.abs(grey33[0] - 100)).toBeLessThanOrEqual(3);
  });

  it('decodeImage throws ImageDecodeError naming the file', async () => {
    for (const f of ['truncated.jpg', 'zero.jpg', 'text.jpg', 'missing.jpg']) {
      const path = join(root, 'bad', f);
      const err = await decodeImage(path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageDecodeError);
      expect((err as ImageDecodeError).path).toBe(path);
      expect((err as Error).message).toContain(f);
    }
  });
});

function expectNear(got: number[], want: number[], tolerance: number): void {
  got.forEach((v, c) =>
    expect(Math.abs(v - want[c]), `channel ${c}: ${v} vs ${want[c]}`).toBeLessThanOrEqual(tolerance),
  );
}

describe('decodeImage geometry', () => {
  it('keeps the native size without options and ignores aspect ratio when resizing', async () => {
    const path = join(root, 'wide.png');
    await writeSolid(path, 30, 10, [10, 200, 30]);
    const native = await decodeImage(path);
    expect([native.width, native.height]).toEqual([30, 10]);
    const square = await decodeImage(path, { size: 12 });
    expect([square.width, square.height]).toEqual([12, 12]);
    expect(pixelAt(square, 11, 11)).toEqual([10, 200, 30]);
  });
});

describe('toNHWC', () => {
  const img = { width: 2, height: 2, data: new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 51, 102, 204]) };
  const pre = {
    size: 2,
    mean: [0.5, 0.5, 0.5] as [number, number, number],
    std: [0.5, 0.25, 0.5] as [number, number, number],
  };

  it('scales to [0,1], subtracts mean, divides by std', () => {
    const x = toNHWC([img], pre, false);
    expect(x.length).toBe(12);
    expect([...x.slice(0, 3)]).toEqual([1, -2, -1]); // (1-.5)/.5, (0-.5)/.25, (0-.5)/.5
    expect(x[9]).toBeCloseTo((0.2 - 0.5) / 0.5, 6);
    expect(x[10]).toBeCloseTo((0.4 - 0.5) / 0.25, 6);
    expect(x[11]).toBeCloseTo((0.8 - 0.5) / 0.5, 6);
  });

  it('mirrors each row when flipping and packs several images', () => {
    const plain = toNHWC([img, img], pre, false);
    const flipped = toNHWC([img, img], pre, true);
    expect(flipped.length).toBe(24);
    expect([...flipped.slice(0, 3)]).toEqual([...plain.slice(3, 6)]);
    expect([...flipped.slice(3, 6)]).toEqual([...plain.slice(0, 3)]);
    expect([...flipped.slice(18, 21)]).toEqual([...plain.slice(21, 24)]);
  });

  it('rejects an image of the wrong size', () => {
    expect(() => toNHWC([{ width: 3, height: 2, data: new Uint8Array(18) }], pre, false)).toThrow(/3x2/);
  });
});

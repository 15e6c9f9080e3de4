/** The image code the edge relies on: EXIF orientation, resizing, header checks, the rate limiter. */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { orientedSize, orientPixels, readOrientation, resizeStretch, type Orientation } from '@protoatlas/shared';
import { ApiError } from '../../edge/src/errors.ts';
import { readUploadHeader } from '../../edge/src/upload-header.ts';
import { memoryRateLimiter } from '../../edge/src/rate-limit.ts';
import { pngBomb } from './helpers/images.ts';

const W = 7;
const H = 4;
const pixels = Uint8Array.from({ length: W * H * 3 }, (_, i) => (i * 37 + 11) % 256);
const raw = () => sharp(pixels, { raw: { width: W, height: H, channels: 3 } });
const ORIENTATIONS = [1, 2, 3, 4, 5, 6, 7, 8] as const;

describe('EXIF orientation', () => {
  it('reads the tag from JPEG, WebP and PNG files', async () => {
    for (const o of ORIENTATIONS) {
      expect(readOrientation(new Uint8Array(await raw().withMetadata({ orientation: o }).jpeg().toBuffer()))).toBe(o);
      expect(
        readOrientation(
          new Uint8Array(await raw().withMetadata({ orientation: o }).webp({ lossless: true }).toBuffer()),
        ),
      ).toBe(o);
      expect(readOrientation(new Uint8Array(await raw().withMetadata({ orientation: o }).png().toBuffer()))).toBe(o);
    }
    expect(readOrientation(new Uint8Array(await raw().png().toBuffer()))).toBe(1);
    // Malformed metadata reads as 1 rather than throwing.
    expect(readOrientation(Uint8Array.from([0xff, 0xd8, 0xff, 0xe1, 0x00, 0x08, 0x45, 0x78, 0x69, 0x66, 0, 0]))).toBe(
      1,
    );
  });

  it('turns stored pixels into what sharp shows, for all eight orientations', async () => {
    for (const o of ORIENTATIONS) {
      const file = await raw().withMetadata({ orientation: o }).png().toBuffer();
      const shown = await sharp(file).autoOrient().raw().toBuffer({ resolveWithObject: true });
      const mine = orientPixels(pixels, W, H, 3, o as Orientation);
      expect({ w: mine.width, h: mine.height }).toEqual({ w: shown.info.width, h: shown.info.height });
      expect(orientedSize(W, H, o as Orientation)).toEqual({ width: mine.width, height: mine.height });
      expect(Array.from(mine.data)).toEqual(Array.from(shown.data));
    }
  });
});

describe('resizeStretch', () => {
  it('leaves an image at its own size unchanged', () => {
    expect(Array.from(resizeStretch({ data: pixels, width: W, height: H, channels: 3 }, W, H))).toEqual(
      Array.from(pixels),
    );
  });

  it('flattens transparency on white', () => {
    const rgba = Uint8Array.from([10, 20, 30, 0, 10, 20, 30, 255, 200, 100, 0, 128, 0, 0, 0, 255]);
    expect(Array.from(resizeStretch({ data: rgba, width: 2, height: 2, channels: 4 }, 2, 2))).toEqual([
      255, 255, 255, 10, 20, 30, 227, 177, 127, 0, 0, 0,
    ]);
  });

  it("shrinks a PNG photo as the trainer's sharp resize does, within a grey level", async () => {
    // A smooth-ish test card: gradients plus texture.
    const w = 500;
    const h = 375;
    const src = Uint8Array.from({ length: w * h * 3 }, (_, i) => {
      const p = Math.floor(i / 3);
      const x = p % w;
      const y = Math.floor(p / w);
      return Math.round(127 + 60 * Math.sin(x / 9 + (i % 3)) + 60 * Math.cos(y / 13));
    });
    const png = await sharp(src, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toBuffer();
    for (const S of [56, 224]) {
      const ref = await sharp(png).resize(S, S, { fit: 'fill' }).raw().toBuffer();
      const mine = resizeStretch({ data: src, width: w, height: h, channels: 3 }, S, S);
      let sum = 0;
      for (let i = 0; i < mine.length; i++) sum += Math.abs(mine[i] - ref[i]);
      expect(sum / mine.length).toBeLessThan(1);
    }
  });
});

describe('image headers', () => {
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e instanceof ApiError ? `${e.status} ${e.code}` : 'other';
    }
    return 'ok';
  };

  it('reads format and size from JPEG, PNG and WebP (lossy, lossless, extended)', async () => {
    const img = sharp({ create: { width: 123, height: 45, channels: 3, background: '#406080' } });
    const cases = [
      ['jpeg', await img.clone().jpeg().toBuffer()],
      ['jpeg', await img.clone().jpeg({ progressive: true }).toBuffer()],
      ['png', await img.clone().png().toBuffer()],
      ['webp', await img.clone().webp().toBuffer()],
      ['webp', await img.clone().webp({ lossless: true }).toBuffer()],
      ['webp', await img.clone().withMetadata({ orientation: 3 }).webp().toBuffer()],
    ] as const;
    for (const [format, buf] of cases)
      expect(readUploadHeader(new Uint8Array(buf), { checkComplete: true })).toEqual({
        format,
        width: 123,
        height: 45,
      });
  });

  it("refuses truncated files, and reads a bomb's size without inflating it", async () => {
    const jpeg = new Uint8Array(
      await sharp({ create: { width: 64, height: 64, channels: 3, background: '#406080' } })
        .jpeg()
        .toBuffer(),
    );
    expect(code(() => readUploadHeader(jpeg.slice(0, jpeg.length - 2), { checkComplete: true }))).toBe(
      '422 undecodable_image',
    );
    expect(readUploadHeader(jpeg.slice(0, 300), { checkComplete: false })).toEqual({
      format: 'jpeg',
      width: 64,
      height: 64,
    });
    const webp = new Uint8Array(
      await sharp({ create: { width: 64, height: 64, channels: 3, background: '#406080' } })
        .webp()
        .toBuffer(),
    );
    expect(code(() => readUploadHeader(webp.slice(0, webp.length - 5), { checkComplete: true }))).toBe(
      '422 undecodable_image',
    );
    expect(readUploadHeader(pngBomb(50_000, 60_000), { checkComplete: true })).toEqual({
      format: 'png',
      width: 50_000,
      height: 60_000,
    });
    expect(code(() => readUploadHeader(new TextEncoder().encode('GIF89a....'), { checkComplete: true }))).toBe(
      '415 unsupported_media_type',
    );
    expect(code(() => readUploadHeader(new Uint8Array([1, 2, 3]), { checkComplete: true }))).toBe(
      '422 undecodable_image',
    );
  });
});

describe('memoryRateLimiter', () => {
  it('allows a burst of the per-minute limit, then refills continuously', async () => {
    let t = 0;
    const rl = memoryRateLimiter(3, () => t);
    const go = async (key = 'a') => (await rl.limit({ key })).success;
    expect([await go(), await go(), await go(), await go()]).toEqual([true, true, true, false]);
    expect(await go('b')).toBe(true);
    t += 20_000; // one token back
    expect([await go(), await go()]).toEqual([true, false]);
  });
});

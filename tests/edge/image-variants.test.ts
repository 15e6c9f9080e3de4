/**
 * Real-world variants of valid photos, made with sharp (plus one YCCK JPEG,
 * which sharp cannot write): each becomes the model input the trainer's own
 * decodeImage (sharp: shrink-on-load, colour conversion, resize) makes of the
 * same file. JPEGs are decoded at sharp's DCT scale, so they agree as closely as PNGs.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { jpegShrinkOnLoad, readIccProfile, readOrientation, webpShrinkOnLoad } from '@protoatlas/shared';
import { decodeImage } from '../../trainer/src/data/decode.ts';
import { ImageDecoder } from '../../edge/src/decode.ts';
import { ApiError } from '../../edge/src/errors.ts';
import { toModelInput } from '../../edge/src/preprocess.ts';
import { readUploadHeader } from '../../edge/src/upload-header.ts';

const require = createRequire(import.meta.url);
const compile = async (spec: string) => WebAssembly.compile(await readFile(require.resolve(spec)));

let decoder: ImageDecoder;
let dir: string;
beforeAll(async () => {
  const [jpeg, webp] = await Promise.all([
    compile('@protoatlas/shared/wasm/jpeg-decode.wasm'),
    compile('@protoatlas/shared/wasm/webp-decode.wasm'),
  ]);
  decoder = new ImageDecoder({ jpeg, webp });
  dir = await mkdtemp(join(tmpdir(), 'protoatlas-variants-'));
});

/** A test card with gradients, texture and a hard edge: w x h, RGB. */
function card(w: number, h: number): Buffer {
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      px[i] = Math.round(127 + 80 * Math.sin(x / 17) + 40 * Math.cos(y / 23));
      px[i + 1] = Math.round((255 * y) / h);
      px[i + 2] = x > w / 2 ? 200 - Math.round((100 * x) / w) : 40 + Math.round(30 * Math.sin((x + y) / 5));
    }
  }
  return px;
}
const raw = (w: number, h: number) => sharp(card(w, h), { raw: { width: w, height: h, channels: 3 } });

/** The edge's path: header, orientation, decode (scaled for JPEG), resize to S. */
async function edgeInput(bytes: Uint8Array, S: number) {
  const head = readUploadHeader(bytes, { checkComplete: true });
  const img = await decoder.decode(head.format, bytes, head, S);
  return { input: toModelInput(img, head, readOrientation(bytes), S), scale: img.scale };
}

/** Mean and largest absolute difference between the edge's and the trainer's model inputs. */
async function compare(name: string, bytes: Uint8Array, S: number) {
  const path = join(dir, name);
  await writeFile(path, bytes);
  const ref = await decodeImage(path, { size: S, orient: true });
  const { input, scale } = await edgeInput(bytes, S);
  expect(input.tensor.length).toBe(ref.data.length);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < ref.data.length; i++) {
    const d = Math.abs(input.tensor[i] - ref.data[i]);
    sum += d;
    max = Math.max(max, d);
  }
  if (process.env.PROTOATLAS_PRINT_AGREEMENT)
    console.log(name, S, `mean ${(sum / ref.data.length).toFixed(3)} max ${max}`);
  return { mean: sum / ref.data.length, max, scale, width: input.width, height: input.height };
}

describe('JPEG decoded at the scale sharp reads it at', () => {
  it("picks the scale of sharp's shrink-on-load, never below the model input", () => {
    expect(jpegShrinkOnLoad(4000, 3000, 224, 224)).toBe(8);
    expect(jpegShrinkOnLoad(500, 375, 224, 224)).toBe(1);
    expect(jpegShrinkOnLoad(1000, 750, 224, 224)).toBe(2);
    expect(jpegShrinkOnLoad(1400, 1200, 224, 224)).toBe(4);
    // Whole factors 2, 4 and 8 (up to the next integer) are halved: libjpeg's rounding.
    expect(jpegShrinkOnLoad(1000, 900, 224, 224)).toBe(2);
    expect(jpegShrinkOnLoad(1792, 1792, 224, 224)).toBe(4);
    expect(jpegShrinkOnLoad(500, 460, 224, 224)).toBe(1);
    for (const [w, h] of [
      [4000, 3000],
      [640, 480],
      [3000, 1000],
      [225, 4000],
    ]) {
      const s = jpegShrinkOnLoad(w, h, 224, 224);
      expect(Math.ceil(w / s)).toBeGreaterThanOrEqual(224);
      expect(Math.ceil(h / s)).toBeGreaterThanOrEqual(224);
    }
  });

  it("baseline, progressive, greyscale and EXIF-turned JPEGs match the trainer's input", async () => {
    const base = raw(1000, 750);
    const cases = {
      baseline: await base.clone().jpeg({ quality: 90 }).toBuffer(),
      progressive: await base.clone().jpeg({ quality: 90, progressive: true }).toBuffer(),
      arithmeticFree444: await base.clone().jpeg({ quality: 90, chromaSubsampling: '4:4:4' }).toBuffer(),
      grey: await base.clone().greyscale().jpeg({ quality: 90 }).toBuffer(),
      turned: await base.clone().rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer(),
    };
    for (const [name, buf] of Object.entries(cases)) {
      for (const [S, scale] of [
        [56, 8],
        [224, 2],
      ] as const) {
        const r = await compare(`${name}.jpg`, new Uint8Array(buf), S);
        expect({ name, S, scale: r.scale }).toEqual({ name, S, scale });
        expect({ name, S, close: r.mean < 0.3 && r.max <= 2 }).toEqual({ name, S, close: true });
      }
    }
    const turned = await edgeInput(new Uint8Array(cases.turned), 56);
    expect([turned.input.width, turned.input.height]).toEqual([1000, 750]);
  });

  it("a 12-megapixel phone photo at the CUB model's 224 px is read at 1/8 and matches the trainer's input", async () => {
    const photo = await raw(4000, 3000).jpeg({ quality: 90 }).toBuffer();
    const r = await compare('phone.jpg', new Uint8Array(photo), 224);
    expect(r.scale).toBe(8);
    expect({ close: r.mean < 0.3 && r.max <= 2 }).toEqual({ close: true });
  });

  it('reports embedded ICC profiles; an sRGB one changes nothing, a Display P3 one is what training would convert', async () => {
    const base = raw(400, 300);
    const plain = await base.clone().jpeg({ quality: 90 }).toBuffer();
    const srgb = await base.clone().withIccProfile('srgb').jpeg({ quality: 90 }).toBuffer();
    const p3 = await base.clone().withIccProfile('p3').jpeg({ quality: 90 }).toBuffer();
    expect(await readIccProfile(new Uint8Array(plain))).toBeNull();
    expect(await readIccProfile(new Uint8Array(srgb))).toEqual({ description: 'sRGB', colorSpace: 'RGB', bytes: 480 });
    expect(await readIccProfile(new Uint8Array(p3))).toEqual({ description: 'sP3C', colorSpace: 'RGB', bytes: 480 });
    const png = await base.clone().withIccProfile('p3').png().toBuffer();
    const webp = await base.clone().withIccProfile('p3').webp().toBuffer();
    for (const f of [png, webp]) expect((await readIccProfile(new Uint8Array(f)))?.description).toBe('sP3C');
    const rPlain = await compare('plain.jpg', new Uint8Array(plain), 64);
    const rSrgb = await compare('srgb.jpg', new Uint8Array(srgb), 64);
    const rP3 = await compare('p3.jpg', new Uint8Array(p3), 64);
    // sharp converts through the profile; the edge reads the pixels as sRGB.
    expect(rSrgb.mean).toBeLessThan(rPlain.mean + 0.3);
    expect(rP3.mean).toBeGreaterThan(rPlain.mean + 1);
  });

  it("CMYK (Adobe, inverted) and YCCK JPEGs get the trainer's colours", async () => {
    const cmyk = new Uint8Array(await raw(1000, 750).toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer());
    for (const S of [56, 224]) {
      const r = await compare('cmyk.jpg', cmyk, S);
      expect({ S, close: r.mean < 0.4 && r.max <= 3 }).toEqual({ S, close: true });
    }
    const ycck = new Uint8Array(await readFile(new URL('./fixtures/ycck-card.jpg', import.meta.url)));
    for (const S of [24, 64]) {
      const r = await compare('ycck.jpg', ycck, S);
      expect({ S, close: r.mean < 0.4 && r.max <= 3 }).toEqual({ S, close: true });
    }
    // A flat colour: naive CMYK arithmetic would be off by tens of levels.
    const solid = new Uint8Array(
      await sharp({ create: { width: 64, height: 64, channels: 3, background: '#1e5aa0' } })
        .toColourspace('cmyk')
        .jpeg()
        .toBuffer(),
    );
    const r = await compare('solid-cmyk.jpg', solid, 32);
    expect(r.max).toBeLessThanOrEqual(1);
  });
});

describe('JPEG decoder failures', () => {
  it('turns a libjpeg error into a 422 with its reason, and decodes the next file afresh', async () => {
    const good = new Uint8Array(await raw(64, 48).jpeg().toBuffer());
    const bad = good.slice();
    // The frame header's sample precision: 12 bits, which this 8-bit build refuses.
    let sof = 2;
    while (!(bad[sof] === 0xff && bad[sof + 1] === 0xc0)) sof++;
    bad[sof + 4] = 12;
    const head = readUploadHeader(bad, { checkComplete: true });
    let err: unknown = null;
    try {
      await decoder.decode('jpeg', bad, head, 16);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect([(err as ApiError).status, (err as ApiError).code]).toEqual([422, 'undecodable_image']);
    expect((err as Error).message).toMatch(/JPEG image could not be decoded: Unsupported JPEG data precision 12/);
    const ok = await edgeInput(good, 16);
    expect(ok.input.tensor.length).toBe(16 * 16 * 3);
  });
});

describe('PNG and WebP variants', () => {
  const S = 64;
  it("16-bit, palette with transparency, grey+alpha and RGBA PNGs match the trainer's input", async () => {
    const w = 160;
    const h = 120;
    const rgb = card(w, h);
    const rgba = Buffer.alloc(w * h * 4);
    for (let i = 0; i < w * h; i++) {
      rgba.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
      rgba[i * 4 + 3] = i % w < 40 ? 0 : i % w < 80 ? 128 : 255;
    }
    const u16 = new Uint16Array(w * h * 3);
    for (let i = 0; i < u16.length; i++) u16[i] = rgb[i] * 257 + ((i * 131) % 257);
    const cases = {
      rgba: await sharp(rgba, { raw: { width: w, height: h, channels: 4 } })
        .png()
        .toBuffer(),
      sixteenBit: await sharp(Buffer.from(u16.buffer), { raw: { width: w, height: h, channels: 3 } })
        .toColourspace('rgb16')
        .png()
        .toBuffer(),
      paletteAlpha: await sharp(rgba, { raw: { width: w, height: h, channels: 4 } })
        .png({ palette: true, colours: 64, dither: 0 })
        .toBuffer(),
      greyAlpha: await sharp(rgba, { raw: { width: w, height: h, channels: 4 } })
        .toColourspace('b-w')
        .png()
        .toBuffer(),
    };
    const meta = await sharp(cases.sixteenBit).metadata();
    expect(meta.depth).toBe('ushort');
    expect((await sharp(cases.paletteAlpha).metadata()).isPalette).toBe(true);
    expect((await sharp(cases.greyAlpha).metadata()).channels).toBe(2);
    for (const [name, buf] of Object.entries(cases)) {
      const r = await compare(`${name}.png`, new Uint8Array(buf), S);
      expect({ name, close: r.mean < 0.3 && r.max <= 2 }).toEqual({ name, close: true });
    }
  });

  it("WebPs (lossless with alpha, lossy) are read at sharp's reduced size and match the trainer's input", async () => {
    // sharp reads a WebP at 1/shrink through libwebp's rescaler (shrink: the smaller reduction factor).
    expect(webpShrinkOnLoad(3840, 2160, 224, 224)).toEqual({ width: 398, height: 224 });
    expect(webpShrinkOnLoad(160, 120, 64, 64)).toEqual({ width: 85, height: 64 });
    expect(webpShrinkOnLoad(200, 100, 224, 224)).toEqual({ width: 200, height: 100 });
    const w = 160;
    const h = 120;
    const rgb = card(w, h);
    const rgba = Buffer.alloc(w * h * 4);
    for (let i = 0; i < w * h; i++) {
      rgba.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
      rgba[i * 4 + 3] = i % w < 40 ? 0 : 255;
    }
    const alpha = await sharp(rgba, { raw: { width: w, height: h, channels: 4 } })
      .webp({ lossless: true })
      .toBuffer();
    const lossy = await raw(1200, 900).webp({ quality: 85 }).toBuffer();
    for (const [name, file, size] of [
      ['alpha.webp', alpha, S],
      ['alpha-whole.webp', alpha, 120],
      ['lossy.webp', lossy, 224],
    ] as const) {
      const r = await compare(name, new Uint8Array(file), size);
      expect({ name, close: r.mean < 0.3 && r.max <= 2 }).toEqual({ name, close: true });
    }
  });

  it('refuses an animated WebP with a clear 415', async () => {
    const frames = [0, 1].map((k) =>
      sharp({ create: { width: 32, height: 32, channels: 3, background: k ? '#ff0000' : '#00ff00' } })
        .png()
        .toBuffer(),
    );
    const anim = new Uint8Array(
      await sharp(await Promise.all(frames), { join: { animated: true } })
        .webp()
        .toBuffer(),
    );
    let err: unknown = null;
    try {
      await edgeInput(anim, 16);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect([(err as ApiError).status, (err as ApiError).code]).toEqual([415, 'unsupported_media_type']);
    expect((err as Error).message).toMatch(/animated WebP/);
  });
});

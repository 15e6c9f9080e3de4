/**
 * The DC scan (shared/wasm/jpeg-dc-scan.c): a baseline JPEG read at 1/8 is
 * entropy-decoded by a decoder of our own that skips the AC symbols of blocks
 * output one pixel each. Its pixels must be libjpeg's: the same wasm with
 * `dcScan: false` runs libjpeg's own Huffman decoder, and sharp's progressive
 * twin of a file (the same coefficients) goes through libjpeg's progressive
 * decoder, two independent references. Restart intervals come from cjpeg
 * fixtures (sharp cannot write them); damaged files must go back to libjpeg.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { WasmJpegDecoder, readImageHeader, type JpegScale } from '@protoatlas/shared';

const require = createRequire(import.meta.url);
const fixtures = join(import.meta.dirname, 'fixtures');

let decoder: WasmJpegDecoder;
beforeAll(async () => {
  const wasm = await readFile(require.resolve('@protoatlas/shared/wasm/jpeg-decode.wasm'));
  decoder = new WasmJpegDecoder(await WebAssembly.compile(wasm));
});

/** A test card with a fixed pseudo-random grain, so blocks carry many AC coefficients of every size. */
function card(w: number, h: number, grain: number): Sharp {
  const px = Buffer.alloc(w * h * 3);
  let s = 11;
  const noise = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * grain;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      px[i] = 127 + 80 * Math.sin(x / 17) + 40 * Math.cos(y / 23) + noise();
      px[i + 1] = (255 * y) / h + noise();
      px[i + 2] = ((x * 7 + y * 13) % 256) + noise();
    }
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } });
}

/** Decodes with the DC scan and with libjpeg's decoder; returns both and the path the first took. */
async function bothWays(bytes: Uint8Array, scale: JpegScale) {
  const fast = await decoder.decode(bytes, scale);
  const path = decoder.lastEntropyPath;
  const libjpeg = await decoder.decode(bytes, scale, { dcScan: false });
  expect(decoder.lastEntropyPath).toBe('libjpeg');
  return { fast, libjpeg, path };
}

const same = (a: { data: Uint8Array }, b: { data: Uint8Array }) => Buffer.from(a.data).equals(Buffer.from(b.data));

describe('the DC scan for baseline JPEGs at 1/8', () => {
  it("decodes 4:2:0, 4:4:4, grey, odd sizes, q50-100, optimised and standard tables to libjpeg's pixels", async () => {
    const sizes = [
      [1001, 753],
      [203, 157],
    ] as const;
    for (const [w, h] of sizes) {
      for (const grain of [0, 80]) {
        const pic = card(w, h, grain);
        const variants = [
          ['4:2:0', pic.clone(), {}],
          ['4:4:4', pic.clone(), { chromaSubsampling: '4:4:4' }],
          ['grey', pic.clone().greyscale(), {}],
          ['4:2:0 standard tables', pic.clone(), { optimiseCoding: false }],
        ] as const;
        for (const [name, img, opts] of variants) {
          for (const quality of [50, 90, 100]) {
            const label = `${w}x${h} grain ${grain} ${name} q${quality}`;
            const jpeg = (more: object) =>
              img
                .clone()
                .jpeg({ quality, ...opts, ...more })
                .toBuffer();
            const baseline = new Uint8Array(await jpeg({}));
            const { fast, libjpeg, path } = await bothWays(baseline, 8);
            expect([label, path]).toEqual([label, 'dc-scan']);
            expect([label, fast.width, fast.height]).toEqual([label, Math.floor(w / 8), Math.floor(h / 8)]);
            expect([label, same(fast, libjpeg)]).toEqual([label, true]);
            // The same coefficients stored progressive: libjpeg's progressive decoder.
            const progressive = await decoder.decode(new Uint8Array(await jpeg({ progressive: true })), 8);
            expect(decoder.lastEntropyPath).toBe('libjpeg');
            expect([label, same(fast, progressive)]).toEqual([label, true]);
          }
        }
      }
    }
  });

  it('follows restart intervals: every MCU row, every 3 MCUs (4:2:2), every MCU (4:4:4), every 7 (grey)', async () => {
    const files = ['restart-420-rows', 'restart-422-mcus', 'restart-444-each-mcu', 'restart-grey-mcus'];
    for (const name of files) {
      const bytes = new Uint8Array(await readFile(join(fixtures, `${name}.jpg`)));
      expect([name, restartMarkers(bytes).length >= 5]).toEqual([name, true]);
      // The header reader walks the entropy-coded data past the restart markers to the end of the image.
      expect([name, readImageHeader(bytes, { checkComplete: true })]).toEqual([
        name,
        { format: 'jpeg', width: 131, height: 97 },
      ]);
      const { fast, libjpeg, path } = await bothWays(bytes, 8);
      expect([name, path, fast.width, fast.height]).toEqual([name, 'dc-scan', 16, 12]);
      expect([name, same(fast, libjpeg)]).toEqual([name, true]);
    }
  });

  it('hands damaged data back to libjpeg: restart markers out of order, a cut file', async () => {
    const good = new Uint8Array(await readFile(join(fixtures, 'restart-444-each-mcu.jpg')));
    const swapped = good.slice();
    const [first, second] = restartMarkers(swapped);
    [swapped[first + 1], swapped[second + 1]] = [swapped[second + 1], swapped[first + 1]];
    const cut = new Uint8Array(await card(400, 300, 80).jpeg({ quality: 90 }).toBuffer()).slice(0, 30000);
    for (const [name, bytes] of [
      ['swapped restart markers', swapped],
      ['cut', cut],
    ] as const) {
      const { fast, libjpeg, path } = await bothWays(bytes, 8);
      expect([name, path]).toEqual([name, 'fell-back']);
      expect([name, same(fast, libjpeg)]).toEqual([name, true]);
    }
    // The next file takes the DC scan again.
    const again = await bothWays(good, 8);
    expect([again.path, same(again.fast, again.libjpeg)]).toEqual(['dc-scan', true]);
  });

  it('leaves progressive files and other scales to libjpeg', async () => {
    const pic = card(320, 240, 40);
    const progressive = new Uint8Array(await pic.clone().jpeg({ quality: 90, progressive: true }).toBuffer());
    await decoder.decode(progressive, 8);
    expect(decoder.lastEntropyPath).toBe('libjpeg');
    const baseline = new Uint8Array(await pic.clone().jpeg({ quality: 90 }).toBuffer());
    for (const scale of [1, 2, 4] as const) {
      await decoder.decode(baseline, scale);
      expect([scale, decoder.lastEntropyPath]).toEqual([scale, 'libjpeg']);
    }
  });
});

/** Offsets of the RSTn markers (FF D0-D7) in a file. */
function restartMarkers(bytes: Uint8Array): number[] {
  const at: number[] = [];
  for (let i = 0; i + 1 < bytes.length; i++) if (bytes[i] === 0xff && (bytes[i + 1] & 0xf8) === 0xd0) at.push(i);
  return at;
}

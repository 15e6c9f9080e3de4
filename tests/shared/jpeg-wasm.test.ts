/**
 * The shared libjpeg-turbo decoder on progressive files: read at a reduced
 * scale, the AC scans of components output one pixel per block are cut
 * before decoding. sharp writes the same quantised coefficients in baseline
 * and progressive form, so the two files must decode to the same pixels at
 * every scale; the baseline path cuts nothing, so it is the reference.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { WasmJpegDecoder } from '@protoatlas/shared';

const require = createRequire(import.meta.url);

describe('progressive JPEG at a reduced scale', () => {
  it('decodes to the pixels of the same picture stored as baseline (4:2:0, 4:4:4, grey; 1/1 to 1/8)', async () => {
    const wasm = await readFile(require.resolve('@protoatlas/shared/wasm/jpeg-decode.wasm'));
    const decoder = new WasmJpegDecoder(await WebAssembly.compile(wasm));
    const w = 1000;
    const h = 750;
    const px = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = (y * w + x) * 3;
        px[i] = 127 + 80 * Math.sin(x / 17) + 40 * Math.cos(y / 23);
        px[i + 1] = (255 * y) / h;
        px[i + 2] = (x * 7 + y * 13) % 256;
      }
    }
    const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
    const variants = [
      ['4:2:0', img.clone(), {}],
      ['4:4:4', img.clone(), { chromaSubsampling: '4:4:4' }],
      ['grey', img.clone().greyscale(), {}],
    ] as const;
    for (const [name, pic, opts] of variants) {
      const baseline = new Uint8Array(
        await pic
          .clone()
          .jpeg({ quality: 90, ...opts })
          .toBuffer(),
      );
      const progressive = new Uint8Array(
        await pic
          .clone()
          .jpeg({ quality: 90, progressive: true, ...opts })
          .toBuffer(),
      );
      for (const scale of [1, 2, 4, 8] as const) {
        const a = await decoder.decode(baseline, scale);
        const b = await decoder.decode(progressive, scale);
        expect([name, scale, b.width, b.height]).toEqual([name, scale, Math.floor(w / scale), Math.floor(h / scale)]);
        expect([name, scale, Buffer.from(b.data).equals(Buffer.from(a.data))]).toEqual([name, scale, true]);
      }
    }
  });
});

/**
 * The model-input resize and EXIF turn against the code they replaced
 * (tests/support/reference-resize.ts): the same bytes for random pictures of
 * every shape the serving path sees (no pre-shrink, box pre-shrink on either
 * axis, partial last blocks, RGBA flattened on white, upscaling), in all
 * eight orientations, whole or streamed row by row through a BoxShrinker.
 */
import { describe, expect, it } from 'vitest';
import {
  boxShrinkerFor,
  modelInputRgb,
  orientPixels,
  resizeStretch,
  type Orientation,
  type PixelSource,
} from '@protoatlas/shared';
import { referenceModelInputRgb, referenceOrientPixels, referenceResizeStretch } from '../support/reference-resize.ts';

/** Deterministic noise bytes (a 32-bit LCG), so a failure replays. */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let s = seed >>> 0;
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** Noise over a smooth picture, so the filters see both edges and gradients. */
function picture(w: number, h: number, channels: 3 | 4, seed: number): PixelSource {
  const grain = noise(w * h * channels, seed);
  const data = new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < channels; c++) {
        const i = (y * w + x) * channels + c;
        const smooth = 128 + 90 * Math.sin(x / (7 + c) + y / 11);
        data[i] = c === 3 ? grain[i] : Math.max(0, Math.min(255, Math.round(smooth + (grain[i] - 128) / 2)));
      }
    }
  }
  return { data, width: w, height: h, channels };
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.from(a).equals(Buffer.from(b));

// [width, height, channels, output side]: the 1/8-scale decode of a 12 MP photo (no pre-shrink),
// portrait, pre-shrink on one or both axes with partial last blocks, RGBA, upscaling, tiny.
const SHAPES = [
  [500, 375, 3, 224],
  [375, 500, 3, 224],
  [1203, 901, 3, 224],
  [1000, 300, 3, 224],
  [501, 377, 4, 224],
  [911, 683, 4, 224],
  [100, 60, 3, 224],
  [7, 4, 3, 7],
  [333, 250, 3, 56],
] as const;

describe('modelInputRgb fast paths', () => {
  it('gives the previous code’s bytes for random pictures in all eight orientations', () => {
    let seed = 1;
    for (const [w, h, ch, size] of SHAPES) {
      const src = picture(w, h, ch, seed++);
      for (let o = 1; o <= 8; o++) {
        const mine = modelInputRgb(src, o as Orientation, size);
        const before = referenceModelInputRgb(src, o as Orientation, size);
        expect(same(mine, before), `${w}x${h}x${ch} -> ${size}, orientation ${o}`).toBe(true);
      }
    }
  });

  it('gives the same bytes from rows streamed through a BoxShrinker', () => {
    let seed = 100;
    for (const [w, h, ch, size] of SHAPES) {
      const src = picture(w, h, ch, seed++);
      const shrinker = boxShrinkerFor(w, h, size, size);
      for (let y = 0; y < h; y++) shrinker.push(src.data.subarray(y * w * ch, (y + 1) * w * ch), 0, ch, y);
      const streamed = modelInputRgb({ shrunk: shrinker.result() }, 6, size);
      expect(same(streamed, referenceModelInputRgb(src, 6, size)), `${w}x${h}x${ch} -> ${size}`).toBe(true);
    }
  });

  it('resizes to non-square outputs as before', () => {
    const src = picture(640, 480, 3, 7);
    for (const [ow, oh] of [
      [224, 100],
      [60, 300],
      [641, 480],
    ] as const) {
      expect(same(resizeStretch(src, ow, oh), referenceResizeStretch(src, ow, oh)), `${ow}x${oh}`).toBe(true);
    }
  });
});

describe('orientPixels', () => {
  it('turns any channel count and element type as before', () => {
    for (const [w, h, ch] of [
      [13, 7, 3],
      [5, 9, 1],
      [1, 6, 4],
      [8, 1, 2],
    ] as const) {
      const bytes = noise(w * h * ch, w * 31 + h);
      const floats = Float32Array.from(bytes, (v) => v / 3);
      for (let o = 1; o <= 8; o++) {
        const a = orientPixels(bytes, w, h, ch, o as Orientation);
        const b = referenceOrientPixels(bytes, w, h, ch, o as Orientation);
        expect({ w: a.width, h: a.height, data: Array.from(a.data) }).toEqual({
          w: b.width,
          h: b.height,
          data: Array.from(b.data),
        });
        expect(Array.from(orientPixels(floats, w, h, ch, o as Orientation).data)).toEqual(
          Array.from(referenceOrientPixels(floats, w, h, ch, o as Orientation).data),
        );
      }
    }
  });
});

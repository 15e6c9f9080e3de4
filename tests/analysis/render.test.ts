import { explain, type DistanceMaps, type ExplainModel } from '@protoatlas/shared';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { renderCrop, renderHeatmap, renderSourceWithBox } from '../../trainer/src/analysis/render.ts';
import {
  reasoningPageInput,
  renderReasoningPage,
  type ReasoningPageInput,
} from '../../trainer/src/analysis/reasoning-page.ts';
import type { RgbImage } from '../../trainer/src/data/types.ts';

type Rgb = [number, number, number];

function solid(width: number, height: number, c: Rgb): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(c, i * 3);
  return { width, height, data };
}

/** Left half red, right half blue. */
function twoColour(width: number, height: number): RgbImage {
  const img = solid(width, height, [220, 30, 30]);
  for (let y = 0; y < height; y++)
    for (let x = width / 2; x < width; x++) img.data.set([30, 30, 220], (y * width + x) * 3);
  return img;
}

async function decode(webp: Uint8Array): Promise<{ width: number; height: number; at: (x: number, y: number) => Rgb }> {
  const meta = await sharp(webp).metadata();
  expect(meta.format).toBe('webp');
  const { data, info } = await sharp(webp).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number): Rgb => {
    const o = (y * info.width + x) * info.channels;
    return [data[o], data[o + 1], data[o + 2]];
  };
  return { width: info.width, height: info.height, at };
}

/** Within `tol` per channel: lossy WebP moves flat colours by a few levels. */
function expectNear(actual: Rgb, expected: Rgb, tol = 12): void {
  actual.forEach((v, c) =>
    expect(Math.abs(v - expected[c]), `channel ${c} of [${actual}] vs [${expected}]`).toBeLessThanOrEqual(tol),
  );
}

const GREY: Rgb = [128, 128, 128];
const isYellow = ([r, g, b]: Rgb) => r > 200 && g > 170 && b < 90;
const isCyan = ([r, g, b]: Rgb) => r < 90 && g > 150 && b > 190;

describe('renderCrop', () => {
  it('crops the box region of a two-colour image', async () => {
    const img = twoColour(100, 50);
    const blue = await decode(await renderCrop(img, { x: 60, y: 10, w: 30, h: 20 }));
    expect([blue.width, blue.height]).toEqual([30, 20]);
    expectNear(blue.at(0, 0), [30, 30, 220]);
    expectNear(blue.at(29, 19), [30, 30, 220]);
    const red = await decode(await renderCrop(img, { x: 5, y: 5, w: 40, h: 40 }));
    expectNear(red.at(20, 20), [220, 30, 30]);
  });

  it('downscales the longer side to maxSide and never enlarges', async () => {
    const img = twoColour(400, 200);
    const small = await decode(await renderCrop(img, { x: 100, y: 0, w: 200, h: 100 }, { maxSide: 50 }));
    expect([small.width, small.height]).toEqual([50, 25]);
    // The box straddles the colour border at its middle: red left, blue right.
    expectNear(small.at(5, 12), [220, 30, 30], 20);
    expectNear(small.at(44, 12), [30, 30, 220], 20);
    const tiny = await decode(await renderCrop(img, { x: 0, y: 0, w: 10, h: 8 }));
    expect([tiny.width, tiny.height]).toEqual([10, 8]);
  });
});

describe('renderSourceWithBox', () => {
  it('draws a yellow box on the edge and leaves grey inside and outside', async () => {
    const input = solid(200, 100, GREY);
    const out = await decode(await renderSourceWithBox(input, { x: 50, y: 20, w: 80, h: 40 }));
    // Drawing happens on a copy: the caller's image is reused for other prototypes.
    expect(input.data.every((v) => v === 128)).toBe(true);
    expect([out.width, out.height]).toEqual([200, 100]);
    expect(isYellow(out.at(51, 40)), `left edge ${out.at(51, 40)}`).toBe(true);
    expect(isYellow(out.at(128, 40)), `right edge ${out.at(128, 40)}`).toBe(true);
    expect(isYellow(out.at(90, 21)), `top edge ${out.at(90, 21)}`).toBe(true);
    expect(isYellow(out.at(90, 58)), `bottom edge ${out.at(90, 58)}`).toBe(true);
    expectNear(out.at(90, 40), GREY);
    expectNear(out.at(10, 10), GREY);
    expectNear(out.at(180, 90), GREY);
  });

  it('scales the box with the image and draws the receptive field in cyan', async () => {
    const out = await decode(
      await renderSourceWithBox(
        solid(400, 200, GREY),
        { x: 100, y: 40, w: 160, h: 80 },
        { maxSide: 200, receptiveField: { x: 20, y: 20, w: 360, h: 160 } },
      ),
    );
    expect([out.width, out.height]).toEqual([200, 100]);
    // Box at half scale: {50, 20, 80, 40}.
    expect(isYellow(out.at(51, 40))).toBe(true);
    expectNear(out.at(90, 40), GREY);
    // Receptive field at half scale: {10, 10, 180, 80}; its first dash starts at the corner.
    expect(isCyan(out.at(12, 10)), `rf top edge ${out.at(12, 10)}`).toBe(true);
    expect(isCyan(out.at(10, 12)), `rf left edge ${out.at(10, 12)}`).toBe(true);
    expectNear(out.at(100, 50), GREY);
  });
});

describe('renderHeatmap', () => {
  // Peaks at the top-left cell and falls off smoothly.
  const peak = Float32Array.from({ length: 49 }, (_, i) => Math.exp(-((Math.floor(i / 7) ** 2 + (i % 7) ** 2) / 4)));

  it('is warmer where the map peaks', async () => {
    const out = await decode(await renderHeatmap(solid(112, 112, GREY), peak, 7, 7));
    expect([out.width, out.height]).toEqual([112, 112]);
    const hot = out.at(2, 2);
    const cold = out.at(109, 109);
    // 0.6 x grey + 0.4 x colormap(1) (pale yellow) vs 0.4 x colormap(0) (black).
    expectNear(hot, [178, 179, 142], 15);
    expectNear(cold, [77, 77, 79], 15);
    expect(hot[0] - cold[0]).toBeGreaterThan(80);
  });

  it('downscales, honours opacity and draws the box', async () => {
    const plain = await decode(await renderHeatmap(solid(448, 224, GREY), peak, 7, 7, { opacity: 0, maxSide: 224 }));
    expect([plain.width, plain.height]).toEqual([224, 112]);
    expectNear(plain.at(3, 3), GREY);
    const boxed = await decode(
      await renderHeatmap(solid(448, 224, GREY), peak, 7, 7, { box: { x: 200, y: 100, w: 100, h: 60 } }),
    );
    expect(isYellow(boxed.at(101, 65)), `box edge ${boxed.at(101, 65)}`).toBe(true);
  });
});

describe('input validation', () => {
  const img = solid(40, 30, GREY);
  it('rejects boxes outside the image or without area', async () => {
    await expect(renderCrop(img, { x: 30, y: 0, w: 20, h: 10 })).rejects.toThrow(/not inside the 40x30 image/);
    await expect(renderCrop(img, { x: -1, y: 0, w: 5, h: 5 })).rejects.toThrow(/not inside/);
    await expect(renderCrop(img, { x: 0, y: 0, w: 0, h: 5 })).rejects.toThrow(/positive size/);
    await expect(renderCrop(img, { x: 0.5, y: 0, w: 5, h: 5 })).rejects.toThrow(/integer/);
    await expect(
      renderSourceWithBox(img, { x: 0, y: 0, w: 5, h: 5 }, { receptiveField: { x: 0, y: 0, w: 41, h: 5 } }),
    ).rejects.toThrow(/receptiveField .* not inside/);
  });
  it('rejects bad images, sizes, maps and opacity', async () => {
    await expect(
      renderCrop({ width: 4, height: 4, data: new Uint8Array(47) }, { x: 0, y: 0, w: 1, h: 1 }),
    ).rejects.toThrow(/48/);
    await expect(
      renderCrop({ width: 0, height: 4, data: new Uint8Array(0) }, { x: 0, y: 0, w: 1, h: 1 }),
    ).rejects.toThrow(/positive/);
    await expect(renderCrop(img, { x: 0, y: 0, w: 5, h: 5 }, { maxSide: 0 })).rejects.toThrow(/maxSide/);
    await expect(renderHeatmap(img, new Float32Array(48), 7, 7)).rejects.toThrow(/48 values, expected 7x7/);
    await expect(renderHeatmap(img, new Float32Array([0, NaN, 0, 0]), 2, 2)).rejects.toThrow(/finite/);
    await expect(renderHeatmap(img, new Float32Array(4), 2, 2, { opacity: 1.5 })).rejects.toThrow(/opacity/);
  });
});

describe('reasoning page', () => {
  async function pageInput(): Promise<ReasoningPageInput> {
    const picture = { bytes: await renderCrop(twoColour(20, 20), { x: 0, y: 0, w: 20, h: 20 }), width: 20, height: 20 };
    const row = (prototype: number, similarity: number, weight: number) => ({
      prototype,
      prototypeClass: '<Tufted> "Titmouse" & Co',
      similarity,
      weight,
      contribution: similarity * weight,
      evidence: picture,
      prototypeImage: { bytes: picture.bytes },
    });
    return {
      fileName: `a<b>&"c'.jpg`,
      classes: [
        {
          className: '<Tufted> "Titmouse" & Co',
          probability: 0.9234,
          logit: 4.5,
          totalPoints: 4.5,
          prototypeCount: 10,
          rows: [row(3, 2.345678, 1.25), row(7, 1, -0.5)],
        },
        {
          className: 'Blue Jay',
          probability: 0.0004,
          logit: 1,
          totalPoints: 1.2,
          prototypeCount: 10,
          rows: [row(4, 0.5, 1)],
        },
      ],
    };
  }

  it('escapes names, gives every image alt text, formats the numbers and stays self-contained', async () => {
    const html = renderReasoningPage(await pageInput());
    expect(html).toContain('a&lt;b&gt;&amp;&quot;c&#39;.jpg');
    expect(html).toContain('&lt;Tufted&gt; &quot;Titmouse&quot; &amp; Co');
    expect(html).not.toContain('<Tufted>');
    expect(html).not.toContain('<b>');
    const imgs = html.match(/<img [^>]*>/g) ?? [];
    expect(imgs).toHaveLength(6);
    for (const tag of imgs) {
      expect(tag).toMatch(/ alt="[^"]{10,}"/);
      expect(tag).toMatch(/ src="data:image\/webp;base64,[A-Za-z0-9+/=]+"/);
    }
    expect(html).toContain('width="20" height="20"');
    // Rows: similarity, weight, points; minus is U+2212.
    expect(html).toContain('>2.346</td>');
    expect(html).toContain('>1.250</td>');
    expect(html).toContain('>2.932</td>');
    expect(html).toContain('>\u22120.500</td>');
    expect(html).toContain('92.3%');
    expect(html).toContain('&lt;0.1%');
    // Totals: shown 2.932 - 0.5 = 2.432, others 4.5 - 2.432 = 2.068, all = logit.
    expect(html).toContain('>2.432</td>');
    expect(html).toContain('Points from the other 8 prototypes</th><td class="num">2.068</td>');
    expect(html).toContain('Total of all 10 prototypes = logit 4.500</th><td class="num">4.500</td>');
    // A total that does not match the logit is shown as such, not hidden.
    expect(html).toContain('Total of all 10 prototypes \u2260 logit 1.000');
    expect(html.match(/<th scope="col"/g)).toHaveLength(12);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/https?:/i);
    expect(html).not.toMatch(/(?:src|href)="(?!data:|#)/);
    expect(html).toContain('prefers-color-scheme:dark');
  });

  it('fills the page input from an explanation', async () => {
    // 2x2 grid, 3 prototypes (0, 1 of class 0; 2 of class 1), prototype 1 pruned.
    const maps: DistanceMaps = {
      data: Float32Array.from([0.1, 5, 2, 3, 5, 1, 4, 5, 0.5, 6, 6, 6]),
      prototypes: 3,
      height: 2,
      width: 2,
      layout: 'prototype-major',
    };
    const model: ExplainModel = {
      lastLayer: Float32Array.from([1, -0.5, 0.3, 0.2, -0.5, 1]),
      numClasses: 2,
      pruned: [false, true, false],
    };
    const image = solid(64, 48, GREY);
    const ex = explain(maps, model, image, { top: 2, evidence: 2 });
    const asked: number[] = [];
    const input = await reasoningPageInput({
      fileName: 'bird.jpg',
      image,
      explanation: ex,
      model,
      classNames: ['Tit', 'Jay'],
      prototypeClass: [0, 0, 1],
      prototypeImage: async (j) => {
        asked.push(j);
        return { bytes: await renderCrop(image, { x: 0, y: 0, w: 8, h: 8 }) };
      },
    });
    expect(input.classes.map((c) => c.className)).toEqual(ex.predictions.map((p) => ['Tit', 'Jay'][p.classId]));
    for (const [i, c] of input.classes.entries()) {
      expect(c.totalPoints).toBeCloseTo(ex.predictions[i].logit, 6);
      expect(c.prototypeCount).toBe(2);
      expect(c.rows.map((r) => r.prototype)).toEqual(ex.predictions[i].evidence.map((e) => e.prototype));
      expect(c.rows[0].evidence).toMatchObject({ width: 64, height: 48, type: 'image/webp' });
    }
    expect(input.classes[0].rows.find((r) => r.prototype === 2)?.prototypeClass).toBe('Jay');
    // Each prototype's picture is fetched once even when it is evidence for both classes.
    expect(asked.sort()).toEqual([0, 2]);
    expect(renderReasoningPage(input).match(/<img /g)).toHaveLength(8);
  });
});

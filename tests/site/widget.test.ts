import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as ort from 'onnxruntime-node';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { SERVED_BOX_SIDE, explain, manifestLastLayer, resizeStretch } from '@protoatlas/shared';
import type { ClassifyResponse, ClassifyResult } from '../../site/widget/src/types.ts';
import { decodeImage } from '../../trainer/src/data/decode.ts';
import { startWranglerDev } from '../../edge/scripts/dev-server.ts';
import {
  buildSite,
  launchChromium,
  screenshot,
  serve,
  staticHandler,
  tinyFixture,
  watchProblems,
  type Fixture,
  type Served,
} from './fixture.ts';

/** What a careful self-hosting page sets: no inline script or style, wasm allowed only for local mode. */
const STRICT_CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'";

/** Pick a photo in the widget and wait for its result (a fresh one: the previous result is replaced). */
async function classifyIn(page: Page, photo: string, selector = 'protoatlas-classifier'): Promise<ClassifyResult> {
  await page.evaluate((s) => {
    const el = document.querySelector(s)!;
    (window as unknown as { __result?: unknown }).__result = undefined;
    el.addEventListener(
      'protoatlas-result',
      (e) => ((window as unknown as { __result?: unknown }).__result = (e as CustomEvent).detail),
      { once: true },
    );
  }, selector);
  await page.locator(`${selector} input[type=file]`).first().setInputFiles(photo);
  await page.waitForFunction(() => (window as unknown as { __result?: unknown }).__result !== undefined, undefined, {
    timeout: 60_000,
  });
  return page.evaluate(() => JSON.parse(JSON.stringify((window as unknown as { __result?: unknown }).__result)));
}

describe('embeddable classifier widget', () => {
  let fx: Fixture;
  let out: string;
  let site: Served;
  let browser: Browser;
  /** Local-mode results by photo, to compare with the edge's. */
  const localResults = new Map<string, ClassifyResult>();

  beforeAll(async () => {
    fx = await tinyFixture();
    out = await mkdtemp(join(tmpdir(), 'protoatlas-widget-'));
    await buildSite(fx.bundle, out); // no PROTOATLAS_API: the try page runs in local mode
    site = await serve(staticHandler(out, { 'content-security-policy': STRICT_CSP }));
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('is small: its own script is under 60 KB gzip, with no onnxruntime inside', async () => {
    const code = await readFile(join(out, 'widget', 'protoatlas-classifier.js'));
    expect(gzipSync(code).length).toBeLessThan(60 * 1024);
    expect(code.toString()).not.toMatch(/InferenceSession\.create=|onnxruntime-web\/dist/);
  });

  it('classifies a real photo in local wasm mode under a strict CSP, as onnxruntime-node and the shared explain do', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const problems = watchProblems(page);
    await page.goto(`${site.url}/try/`);
    const m = fx.manifest;
    // Reference: the same ONNX model (on wasm the widget runs the deployed int8 one, as the edge does),
    // the same shared resize and the same explain(), in Node.
    const session = await ort.InferenceSession.create(
      join(fx.bundle, (m.files.onnx!.int8 ?? m.files.onnx!.fp32)!.path),
    );
    const S = m.preprocessing.size;
    const reference = async (path: string) => {
      const { data, info } = await sharp(path).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
      const rgb = resizeStretch({ data, width: info.width, height: info.height, channels: 4 }, S, S);
      const o = await session.run({ image: new ort.Tensor('float32', Float32Array.from(rgb), [1, S, S, 3]) });
      const d = o.distances;
      return explain(
        {
          data: d.data as Float32Array,
          prototypes: d.dims[1],
          height: d.dims[2],
          width: d.dims[3],
          layout: 'prototype-major',
        },
        {
          lastLayer: manifestLastLayer(m),
          numClasses: m.classes.length,
          pruned: m.prototypes.map((p) => p.pruned),
          epsilon: m.similarityEpsilon,
        },
        { width: info.width, height: info.height },
        { top: 3, evidence: 3, boxMaxSide: SERVED_BOX_SIDE },
      );
    };
    let r: ClassifyResult | null = null;
    for (const photo of [fx.photos[0], fx.photos[1], fx.photos[5]]) {
      const ref = await reference(photo.path);
      r = await classifyIn(page, photo.path);
      localResults.set(photo.path, r);
      expect(r.mode).toBe('local');
      expect(r.provider).toBe('wasm');
      expect(r.image).toEqual({ width: 64, height: 64 });
      expect(r.model.id).toBe(m.model.id);
      // Same classes, probabilities, evidence and boxes as Node: one explanation, two runtimes.
      expect(r.predictions.map((p) => p.classId)).toEqual(ref.predictions.map((p) => p.classId));
      r.predictions.forEach((p, i) => {
        expect(p.label).toBe(m.classes[p.classId].name);
        // The int8 model: wasm and native int8 kernels may round differently in the last bit.
        expect(p.logit).toBeCloseTo(ref.predictions[i].logit, 2);
        expect(p.evidence.map((e) => [e.prototypeId, e.box])).toEqual(
          ref.predictions[i].evidence.map((e) => [e.prototype, e.box]),
        );
        for (const e of p.evidence) {
          expect(e.contribution).toBeCloseTo(e.similarity * e.weight, 5);
          expect(e.prototypeImageUrl).toBe(`${site.url}/bundle/${m.prototypes[e.prototypeId].files!.crop}`);
        }
      });
    }
    await session.release();
    const top = r!.predictions[0];
    // Shown: the mode, and each evidence pair (photo with box beside the prototype crop, with points).
    const w = page.locator('protoatlas-classifier');
    expect(await w.locator('.mode').getAttribute('data-provider')).toBe('wasm');
    expect(await w.locator('.mode').innerText()).toMatch(/Mode: local · onnxruntime-web WebAssembly/);
    expect(await w.locator('.pred h3').first().innerText()).toContain(top.label);
    const pairs = w.locator('.pred').first().locator('.pair');
    expect(await pairs.count()).toBe(top.evidence.length);
    expect(await pairs.first().locator('.points').innerText()).toContain(
      `${top.evidence[0].contribution >= 0 ? '+' : '−'}${Math.abs(top.evidence[0].contribution).toFixed(2)} points`,
    );
    await expect
      .poll(() =>
        pairs
          .locator('img')
          .evaluateAll((els) => (els as HTMLImageElement[]).every((i) => i.complete && i.naturalWidth > 0)),
      )
      .toBe(true);
    // onnxruntime's wasm build was fetched (from the widget's own folder); its WebGPU build was not.
    const urls = site.requests.map((q) => q.url);
    expect(urls).toContain('/widget/ort/ort-wasm-simd-threaded.wasm');
    expect(urls.some((u) => u.includes('asyncify'))).toBe(false);
    await screenshot(page, 'widget-local-wasm');
    // Headless Chromium has no GPU: probing for WebGPU logs this once, and the widget falls back to wasm as it should.
    expect(problems.filter((p) => p !== 'console warning: No available adapters.')).toEqual([]);
    await page.close();
  });

  it('local mode reads CMYK, progressive and 16-bit/palette/grey+alpha photos as the trainer does', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const problems = watchProblems(page);
    await page.goto(`${site.url}/try/`);
    const m = fx.manifest;
    const S = m.preprocessing.size;
    const session = await ort.InferenceSession.create(
      join(fx.bundle, (m.files.onnx!.int8 ?? m.files.onnx!.fp32)!.path),
    );
    const dir = await mkdtemp(join(tmpdir(), 'protoatlas-widget-variants-'));
    // The reference is the trainer's own decode (sharp: shrink-on-load, CMYK profile, 16-bit to 8, alpha on white).
    const reference = async (path: string) => {
      const input = await decodeImage(path, { size: S, orient: true });
      const meta = await sharp(path).metadata();
      const o = await session.run({ image: new ort.Tensor('float32', Float32Array.from(input.data), [1, S, S, 3]) });
      const d = o.distances;
      return explain(
        {
          data: d.data as Float32Array,
          prototypes: d.dims[1],
          height: d.dims[2],
          width: d.dims[3],
          layout: 'prototype-major',
        },
        {
          lastLayer: manifestLastLayer(m),
          numClasses: m.classes.length,
          pruned: m.prototypes.map((p) => p.pruned),
          epsilon: m.similarityEpsilon,
        },
        { width: meta.width!, height: meta.height! },
        { top: 3, evidence: 3, boxMaxSide: SERVED_BOX_SIDE },
      );
    };
    const src = sharp(fx.photos[1].path).resize(1000, 750, { fit: 'fill' });
    const rgba = await src.clone().ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    for (let i = 3; i < rgba.data.length; i += 4) rgba.data[i] = (i >> 2) % 1000 < 200 ? 0 : 255;
    const withAlpha = () => sharp(rgba.data, { raw: { width: 1000, height: 750, channels: 4 } });
    const variants: [string, Buffer][] = [
      ['cmyk.jpg', await src.clone().toColourspace('cmyk').jpeg({ quality: 92 }).toBuffer()],
      ['progressive.jpg', await src.clone().jpeg({ quality: 92, progressive: true }).toBuffer()],
      ['sixteen.png', await src.clone().toColourspace('rgb16').png().toBuffer()],
      ['palette.png', await withAlpha().png({ palette: true, colours: 128 }).toBuffer()],
      ['grey-alpha.png', await withAlpha().toColourspace('b-w').png().toBuffer()],
    ];
    for (const [name, bytes] of variants) {
      const path = join(dir, name);
      await writeFile(path, bytes);
      const ref = await reference(path);
      const r = await classifyIn(page, path);
      expect([name, r.mode, r.image]).toEqual([name, 'local', { width: 1000, height: 750 }]);
      expect([name, r.predictions.map((p) => p.classId)]).toEqual([name, ref.predictions.map((p) => p.classId)]);
      r.predictions.forEach((p, i) => {
        // JPEG: the shared wasm, the trainer's pixels. PNG: Chromium's decoder, whose pixels differ a little more;
        // the tiny int8 test model quantises its input and amplifies that (docs/edge-performance.md).
        expect([name, Math.abs(p.logit - ref.predictions[i].logit) < (name.endsWith('.jpg') ? 0.05 : 0.3)]).toEqual([
          name,
          true,
        ]);
      });
    }
    // The JPEG decoder came from the widget's folder.
    expect(site.requests.map((q) => q.url)).toContain('/widget/jpeg-decode.wasm');
    expect(problems.filter((p) => p !== 'console warning: No available adapters.')).toEqual([]);
    await session.release();
    await rm(dir, { recursive: true, force: true });
    await page.close();
  });

  describe('remote mode, embedded on another origin', () => {
    let api: Served;
    let host: Served;
    let lastBody: Buffer | null = null;
    let fail = false;

    beforeAll(async () => {
      // A stand-in for the edge's POST /classify (edge/ is built in parallel): the same contract and CORS.
      api = await serve(async (req, res) => {
        const cors = {
          'access-control-allow-origin': req.headers.origin ?? '*',
          'access-control-allow-methods': 'POST, OPTIONS',
          'access-control-allow-headers': 'content-type',
          vary: 'origin',
        };
        if (req.method === 'OPTIONS') return void res.writeHead(204, cors).end();
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        lastBody = Buffer.concat(chunks);
        if (fail)
          return void res
            .writeHead(415, { ...cors, 'content-type': 'application/json' })
            .end(JSON.stringify({ error: { code: 'unsupported_image', message: 'not a JPEG, PNG or WebP image' } }));
        const m = fx.manifest;
        const url = new URL(req.url ?? '/', 'http://x');
        const body: ClassifyResponse = {
          model: { id: m.model.id, version: m.model.version, precision: 'int8' },
          predictions: [1, 0].slice(0, Number(url.searchParams.get('top'))).map((c, i) => ({
            classId: c,
            label: m.classes[c].name,
            key: m.classes[c].key,
            probability: i === 0 ? 0.8 : 0.2,
            logit: 2 - i,
            evidence: m.prototypes
              .filter((p) => p.classId === c)
              .map((p, k) => ({
                prototypeId: p.id,
                prototypeClassId: p.classId,
                similarity: 1.5,
                weight: 1,
                contribution: 1.5 - k * 0.25,
                box: { x: 8 + k * 20, y: 10, w: 20, h: 24 },
                prototypeImageUrl: `${site.url}/bundle/${p.files!.crop}`,
                sourceImageUrl: null,
                heatmapImageUrl: null,
              })),
          })),
          timings: { totalMs: 3 },
        };
        res.writeHead(200, { ...cors, 'content-type': 'application/json' }).end(JSON.stringify(body));
      });
      // The embedding page, on its own origin, for the API named in ?api=.
      host = await serve((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        if (url.pathname === '/blank.html')
          return void res
            .writeHead(200, { 'content-type': 'text/html' })
            .end('<!doctype html><title>blank</title><p>blank</p>');
        const apiOrigin = new URL(url.searchParams.get('api') ?? api.url).origin;
        res
          .writeHead(200, {
            'content-type': 'text/html',
            // The embedding page's own strict CSP: only the atlas' script, the API and the two image origins.
            'content-security-policy': `default-src 'none'; script-src ${site.url}; connect-src ${apiOrigin}; img-src ${site.url} ${apiOrigin}; style-src 'self'`,
          })
          .end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A bird blog</title></head><body>
<h1>My garden birds</h1>
<protoatlas-classifier api="${apiOrigin}/classify" atlas="${site.url}/" top="2" evidence="2"></protoatlas-classifier>
<script src="${site.url}/widget/protoatlas-classifier.js"></script>
</body></html>`);
      });
    });

    afterAll(async () => {
      await api?.close();
      await host?.close();
    });

    it('posts the photo cross-origin (CORS preflight) and shows the evidence pairs', async () => {
      const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
      const problems = watchProblems(page);
      const seen = site.requests.length;
      await page.goto(`${host.url}/?api=${encodeURIComponent(api.url)}`);
      const photo = fx.photos[2].path;
      const r = await classifyIn(page, photo);
      expect(r.mode).toBe('remote');
      expect(r.provider).toBeNull();
      expect(r.predictions.map((p) => p.label)).toEqual([fx.manifest.classes[1].name, fx.manifest.classes[0].name]);
      expect(lastBody!.equals(await readFile(photo))).toBe(true);
      const pre = api.requests.find((q) => q.method === 'OPTIONS');
      expect(pre?.headers.origin).toBe(host.url);
      const post = api.requests.find((q) => q.method === 'POST');
      expect(post?.url).toBe('/classify?top=2&evidence=2');
      expect(post?.headers['content-type']).toBe('image/png');
      const w = page.locator('protoatlas-classifier');
      expect(await w.locator('.mode').innerText()).toMatch(/Mode: remote · edge API/);
      expect(await w.locator('.pair').count()).toBe(r.predictions.reduce((n, p) => n + p.evidence.length, 0));
      expect(await w.locator('.pair a').first().getAttribute('href')).toBe(
        `${site.url}/prototypes/${r.predictions[0].evidence[0].prototypeId}/`,
      );
      await expect
        .poll(() =>
          w.locator('.pair img').evaluateAll((els) => (els as HTMLImageElement[]).every((i) => i.naturalWidth > 0)),
        )
        .toBe(true);
      // Remote mode never loads onnxruntime.
      expect(site.requests.slice(seen).some((q) => q.url.startsWith('/widget/ort/'))).toBe(false);
      await screenshot(page, 'widget-remote-cross-origin');
      expect(problems).toEqual([]);
      // An API error reaches the user as a message.
      fail = true;
      await w.locator('input[type=file]').first().setInputFiles(photo);
      await expect
        .poll(() => w.locator('.status').innerText())
        .toBe('Could not classify: the API refused the photo: not a JPEG, PNG or WebP image');
      expect(await w.locator('.status').getAttribute('role')).toBe('alert');
      fail = false;
      await page.close();
    });

    it('classifies against the real edge under wrangler dev, with the same explanation as local mode', async () => {
      const edge = await startWranglerDev(fx.bundle);
      try {
        const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
        const problems = watchProblems(page);
        await page.goto(`${host.url}/?api=${encodeURIComponent(edge.url)}`);
        const photo = fx.photos[1];
        const r = await classifyIn(page, photo.path);
        expect(r.mode).toBe('remote');
        expect(r.model.id).toBe(fx.manifest.model.id);
        // The edge and the browser run one explain() on one resize: same species, points and boxes.
        const local = localResults.get(photo.path)!;
        expect(local).toBeDefined();
        expect(r.predictions.map((p) => p.classId)).toEqual(local.predictions.slice(0, 2).map((p) => p.classId));
        r.predictions.forEach((p, i) => {
          expect(p.logit).toBeCloseTo(local.predictions[i].logit, 3);
          expect(p.evidence.map((e) => [e.prototypeId, e.box])).toEqual(
            local.predictions[i].evidence.slice(0, 2).map((e) => [e.prototypeId, e.box]),
          );
        });
        // The prototype crops come from the edge's own copy of the bundle.
        expect(r.predictions[0].evidence[0].prototypeImageUrl).toMatch(new RegExp(`^${edge.url}/`));
        const w = page.locator('protoatlas-classifier');
        await expect
          .poll(() =>
            w.locator('.pair img').evaluateAll((els) => (els as HTMLImageElement[]).every((i) => i.naturalWidth > 0)),
          )
          .toBe(true);
        await screenshot(page, 'widget-remote-edge-wrangler');
        expect(problems).toEqual([]);
        await page.close();
      } finally {
        await edge.stop();
      }
    }, 180_000);

    it('defines only its custom element: no globals, no styles outside its shadow root', async () => {
      const page = await browser.newPage();
      await page.goto(`${host.url}/blank.html`);
      const before = await page.evaluate(() => Object.keys(window));
      await page.addScriptTag({ url: `${site.url}/widget/protoatlas-classifier.js` });
      const after = await page.evaluate(() => Object.keys(window));
      expect(after.filter((k) => !before.includes(k))).toEqual([]);
      expect(await page.evaluate(() => typeof customElements.get('protoatlas-classifier'))).toBe('function');
      expect(await page.evaluate(() => document.styleSheets.length + document.adoptedStyleSheets.length)).toBe(0);
      await page.close();
    });
  });
});

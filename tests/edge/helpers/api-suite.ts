/**
 * The API's behaviour, as one suite run against each runtime: the Node app
 * (in-process) and the Worker under workerd (wrangler dev, over HTTP).
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, type Manifest } from '@protoatlas/shared';
import {
  gif,
  pngBomb,
  solidPng,
  testImages,
  toJpeg,
  toWebpLossless,
  withOrientation6,
  type TestImage,
} from './images.ts';
import { nativeLogits, trainerLogits } from './native.ts';
import { ensureTestBundle } from './test-bundle.ts';

export type Fetch = (path: string, init?: RequestInit) => Promise<Response>;

/** The rate limit both targets are started with; the last test exhausts it. */
export const SUITE_RATE_LIMIT = 200;

interface Evidence {
  prototypeId: number;
  similarity: number;
  weight: number;
  contribution: number;
  box: { x: number; y: number; w: number; h: number };
  prototypeImageUrl: string;
  sourceImageUrl: string;
}
interface Prediction {
  classId: number;
  label: string;
  probability: number;
  logit: number;
  evidence: Evidence[];
}
interface ClassifyBody {
  requestId: string;
  model: { id: string; version: string; precision: string };
  image: { format: string; width: number; height: number; orientation: number };
  predictions: Prediction[];
  timings: Record<string, number>;
}

/** sharp's withMetadata() embeds its sRGB profile: the edge reports it, unapplied. */
const SHARP_SRGB = { description: 'sRGB', colorSpace: 'RGB', applied: false };

const post = (f: Fetch, body: BodyInit | null, type: string | null, query = '') =>
  f(`/classify${query}`, { method: 'POST', body, headers: type ? { 'content-type': type } : {} });

async function expectError(res: Response, status: number, code: string): Promise<string> {
  const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
  expect({ status: res.status, code: body.error.code }).toEqual({ status, code });
  expect(body.error.requestId).toBe(res.headers.get('x-request-id'));
  expect(body.error.message.length).toBeGreaterThan(10);
  return body.error.message;
}

export function apiSuite(name: string, start: (bundleDir: string) => Promise<Fetch>): void {
  describe(name, () => {
    let f: Fetch;
    let manifest: Manifest;
    let images: TestImage[];
    let native: Float32Array[];

    beforeAll(async () => {
      const tb = await ensureTestBundle();
      manifest = parseManifest(JSON.parse(await readFile(join(tb.dir, 'manifest.json'), 'utf8')));
      images = await testImages(tb.dataDir);
      native = await nativeLogits(tb.dir, images);
      f = await start(tb.dir);
    }, 300_000);

    async function classify(bytes: Uint8Array, type: string, query = '?top=4&evidence=20'): Promise<ClassifyBody> {
      const res = await post(f, bytes as Uint8Array<ArrayBuffer>, type, query);
      expect(res.status, await res.clone().text()).toBe(200);
      return (await res.json()) as ClassifyBody;
    }

    function checkExplanation(r: ClassifyBody, img: { width: number; height: number }): void {
      const live = manifest.prototypes.filter((p) => !p.pruned).length;
      expect(r.predictions).toHaveLength(4);
      const probs = r.predictions.map((p) => p.probability);
      expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
      expect([...probs].sort((a, b) => b - a)).toEqual(probs);
      for (const p of r.predictions) {
        expect(p.label).toBe(manifest.classes[p.classId].name);
        // Every live prototype is listed (evidence=20 > 8), so the points add up to the logit.
        expect(p.evidence).toHaveLength(live);
        expect(p.evidence.reduce((a, e) => a + e.contribution, 0)).toBeCloseTo(p.logit, 4);
        for (const e of p.evidence) {
          expect(e.contribution).toBeCloseTo(e.similarity * e.weight, 9);
          expect(e.weight).toBeCloseTo(manifest.prototypes[e.prototypeId].weights[p.classId], 6);
          expect(e.box.x).toBeGreaterThanOrEqual(0);
          expect(e.box.y).toBeGreaterThanOrEqual(0);
          expect(e.box.w).toBeGreaterThan(0);
          expect(e.box.h).toBeGreaterThan(0);
          expect(e.box.x + e.box.w).toBeLessThanOrEqual(img.width);
          expect(e.box.y + e.box.h).toBeLessThanOrEqual(img.height);
          expect(new URL(e.prototypeImageUrl).pathname).toBe(
            `/bundle/${manifest.prototypes[e.prototypeId].files!.crop}`,
          );
        }
      }
    }

    it('classifies real PNG images as onnxruntime-node does, with evidence that sums to the logits', async () => {
      for (const [i, img] of images.entries()) {
        const r = await classify(img.png, 'image/png');
        // The deployed model: int8 when the bundle has one.
        expect(r.model).toEqual({
          id: manifest.model.id,
          version: manifest.model.version,
          precision: manifest.files.onnx!.int8 ? 'int8' : 'fp32',
        });
        expect(r.image).toEqual({ format: 'png', width: 96, height: 64, orientation: 1 });
        checkExplanation(r, img);
        for (const p of r.predictions) expect(p.logit).toBeCloseTo(native[i][p.classId], 3);
        const best = native[i].indexOf(Math.max(...native[i]));
        expect(r.predictions[0].classId).toBe(best);
        expect(r.timings.total).toBeGreaterThanOrEqual(r.timings.inference);
      }
    });

    it("classifies WebP as the trainer's own decode does (read at sharp's reduced size) and JPEG near PNG", async () => {
      const img = images[0];
      const png = await classify(img.png, 'image/png');
      const lossless = await toWebpLossless(img.png);
      const webp = await classify(lossless, 'image/webp');
      expect(webp.image).toEqual({ format: 'webp', width: 96, height: 64, orientation: 1 });
      checkExplanation(webp, img);
      const dir = await mkdtemp(join(tmpdir(), 'protoatlas-webp-'));
      await writeFile(join(dir, 'bird.webp'), lossless);
      const [ref] = await trainerLogits((await ensureTestBundle()).dir, [join(dir, 'bird.webp')]);
      expect(webp.predictions[0].classId).toBe(ref.indexOf(Math.max(...ref)));
      for (const p of webp.predictions) expect(Math.abs(p.logit - ref[p.classId])).toBeLessThan(0.2);
      const jpeg = await classify(await toJpeg(img.png), 'image/jpeg');
      expect(jpeg.image).toEqual({ format: 'jpeg', width: 96, height: 64, orientation: 1 });
      checkExplanation(jpeg, img);
      jpeg.predictions.forEach((p, k) =>
        expect(Math.abs(p.logit - png.predictions.find((q) => q.classId === p.classId)!.logit)).toBeLessThan(
          0.5 + 0 * k,
        ),
      );
    });

    it("classifies large, progressive, turned and CMYK JPEGs as the trainer's own decode does", async () => {
      const tb = await ensureTestBundle();
      const dir = await mkdtemp(join(tmpdir(), 'protoatlas-large-'));
      // Decoded at a reduced DCT scale, as sharp reads it for the trainer.
      const big = sharp(images[1].png).resize(2000, 1500, { fit: 'fill' });
      const files: [string, Buffer, { width: number; height: number; orientation: number; colorProfile?: object }][] = [
        [
          'large.jpg',
          await big.clone().jpeg({ quality: 90 }).toBuffer(),
          { width: 2000, height: 1500, orientation: 1 },
        ],
        [
          'progressive.jpg',
          await big.clone().jpeg({ quality: 90, progressive: true }).toBuffer(),
          { width: 2000, height: 1500, orientation: 1 },
        ],
        [
          'turned.jpg',
          await big.clone().rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer(),
          { width: 2000, height: 1500, orientation: 6, colorProfile: SHARP_SRGB },
        ],
        [
          'cmyk.jpg',
          await big.clone().toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer(),
          { width: 2000, height: 1500, orientation: 1 },
        ],
      ];
      for (const [name, bytes] of files) await writeFile(join(dir, name), bytes);
      const ref = await trainerLogits(
        tb.dir,
        files.map(([name]) => join(dir, name)),
      );
      for (const [k, [name, bytes, image]] of files.entries()) {
        const r = await classify(new Uint8Array(bytes), 'image/jpeg');
        expect([name, r.image]).toEqual([name, { format: 'jpeg', ...image }]);
        checkExplanation(r, image);
        expect([name, r.predictions[0].classId]).toEqual([name, ref[k].indexOf(Math.max(...ref[k]))]);
        // The tiny int8 test model quantises its input, so inputs a fraction of a level apart move its
        // logits visibly (docs/edge-performance.md); the top class is the answer that must not change.
        for (const p of r.predictions)
          expect([name, Math.abs(p.logit - ref[k][p.classId]) < 0.2]).toEqual([name, true]);
      }
    });

    it('accepts multipart/form-data with an image field', async () => {
      const form = new FormData();
      form.append('note', 'hello');
      form.append('image', new Blob([images[1].png as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'bird.png');
      const res = await f('/classify?top=1&evidence=2', { method: 'POST', body: form });
      expect(res.status).toBe(200);
      const r = (await res.json()) as ClassifyBody;
      const direct = await classify(images[1].png, 'image/png', '?top=1&evidence=2');
      expect(r.predictions).toEqual(direct.predictions);
      expect(r.predictions[0].evidence).toHaveLength(2);
    });

    it('applies EXIF orientation: boxes are in the picture as displayed', async () => {
      const img = images[2];
      // PNG: the resize treats x and y alike, so the turned file gives the upright one's answer exactly.
      const upright = await classify(img.png, 'image/png');
      const turned = await classify(await withOrientation6(img.png, 'png'), 'image/png');
      expect(turned.image).toEqual({ format: 'png', width: 96, height: 64, orientation: 6, colorProfile: SHARP_SRGB });
      for (const [k, p] of turned.predictions.entries()) {
        expect(p.classId).toBe(upright.predictions[k].classId);
        expect(p.logit).toBeCloseTo(upright.predictions[k].logit, 4);
        expect(p.evidence.map((e) => e.box)).toEqual(upright.predictions[k].evidence.map((e) => e.box));
      }
      // WebP: libwebp's rescaler (sharp's too) rounds x and y differently, so only close.
      const uprightWebp = await classify(await toWebpLossless(img.png), 'image/webp');
      const turnedWebp = await classify(await withOrientation6(img.png, 'webp'), 'image/webp');
      expect(turnedWebp.image).toEqual({
        format: 'webp',
        width: 96,
        height: 64,
        orientation: 6,
        colorProfile: SHARP_SRGB,
      });
      expect(turnedWebp.predictions[0].classId).toBe(uprightWebp.predictions[0].classId);
      expect(Math.abs(turnedWebp.predictions[0].logit - uprightWebp.predictions[0].logit)).toBeLessThan(0.02);
      const jpeg = await classify(await withOrientation6(img.png, 'jpeg'), 'image/jpeg', '?top=1&evidence=1');
      expect(jpeg.image).toEqual({ format: 'jpeg', width: 96, height: 64, orientation: 6, colorProfile: SHARP_SRGB });
    });

    it('refuses bad queries with 400', async () => {
      for (const q of ['?top=0', '?top=11', '?top=abc', '?top=2.5', '?evidence=21', '?evidence=-1']) {
        await expectError(await post(f, images[0].png as Uint8Array<ArrayBuffer>, 'image/png', q), 400, 'bad_query');
      }
    });

    it('refuses a missing or zero-byte body with 411 and a body over 10 MB with 413', async () => {
      await expectError(await post(f, null, 'image/jpeg'), 411, 'body_missing');
      await expectError(await post(f, new Uint8Array(0), 'image/png'), 411, 'body_missing');
      const big = new Uint8Array(10 * 1024 * 1024 + 1);
      big.set([0xff, 0xd8, 0xff]);
      await expectError(await post(f, big, 'image/jpeg'), 413, 'body_too_large');
    });

    it('refuses other media types with 415', async () => {
      await expectError(await post(f, 'a bird, probably', 'text/plain'), 415, 'unsupported_media_type');
      await expectError(await post(f, 'a bird, probably', null), 415, 'unsupported_media_type');
      await expectError(
        await post(f, gif as Uint8Array<ArrayBuffer>, 'application/octet-stream'),
        415,
        'unsupported_media_type',
      );
      await expectError(await post(f, gif as Uint8Array<ArrayBuffer>, 'image/png'), 415, 'unsupported_media_type');
    });

    it('accepts image bytes sent without an image type (`curl --data-binary @bird.png`) by their magic bytes', async () => {
      for (const type of [null, 'application/x-www-form-urlencoded', 'application/octet-stream']) {
        const res = await post(f, images[0].png as Uint8Array<ArrayBuffer>, type, '?top=1&evidence=1');
        expect(res.status, String(type)).toBe(200);
        const body = (await res.json()) as { predictions: unknown[] };
        expect(body.predictions).toHaveLength(1);
      }
    });

    it('refuses a form without an image file field with 400', async () => {
      const form = new FormData();
      form.append('file', new Blob([images[0].png as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'bird.png');
      expect(
        await expectError(await f('/classify', { method: 'POST', body: form }), 400, 'missing_image_field'),
      ).toMatch(/"file"/);
      const text = new FormData();
      text.append('image', 'not a file');
      await expectError(await f('/classify', { method: 'POST', body: text }), 400, 'missing_image_field');
      await expectError(await post(f, 'garbage', 'multipart/form-data; boundary=xyz'), 400, 'bad_multipart');
    });

    it('refuses undecodable, truncated, bomb and tiny images with 422', async () => {
      const jpeg = await toJpeg(images[0].png);
      expect(
        await expectError(
          await post(f, jpeg.slice(0, Math.floor(jpeg.length * 0.6)), 'image/jpeg'),
          422,
          'undecodable_image',
        ),
      ).toMatch(/truncated/);
      const png = images[0].png;
      expect(
        await expectError(await post(f, png.slice(0, png.length - 20), 'image/png'), 422, 'undecodable_image'),
      ).toMatch(/truncated/);
      const junk = Uint8Array.from({ length: 4000 }, (_, i) => (i * 7919) % 251);
      junk.set([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]);
      await expectError(await post(f, junk, 'image/jpeg'), 422, 'undecodable_image');
      await expectError(await post(f, 'hello, world', 'image/webp'), 422, 'undecodable_image');
      // 100,000 x 100,000 pixels in a few hundred bytes: refused from the header.
      const bomb = pngBomb(100_000, 100_000);
      expect(bomb.length).toBeLessThan(1000);
      expect(
        await expectError(await post(f, bomb as Uint8Array<ArrayBuffer>, 'image/png'), 422, 'image_too_large'),
      ).toMatch(/100000x100000/);
      expect(
        await expectError(
          await post(f, (await solidPng(15, 200)) as Uint8Array<ArrayBuffer>, 'image/png'),
          422,
          'image_too_small',
        ),
      ).toMatch(/15x200/);
      // The service is still healthy after all that.
      expect((await classify(images[0].png, 'image/png', '?top=1&evidence=1')).predictions).toHaveLength(1);
    });

    it('serves health, the model card, prototypes, OpenAPI and a home page', async () => {
      const h = (await (await f('/healthz')).json()) as { ok: boolean; model: unknown; wasmMemoryBytes: number | null };
      const model = { id: manifest.model.id, version: manifest.model.version };
      expect(h).toMatchObject({ ok: true, error: null, model });
      // Earlier tests classified, so onnxruntime's wasm memory exists: whole 64 KiB pages, well under 128 MB.
      expect(h.wasmMemoryBytes! % 65536).toBe(0);
      expect(h.wasmMemoryBytes!).toBeGreaterThan(1 << 20);
      expect(h.wasmMemoryBytes!).toBeLessThan(128 << 20);
      const card = (await (await f('/model')).json()) as {
        classes: unknown[];
        prototypes: { total: number };
        accuracy: { validation: unknown; baseline: unknown };
        version: string;
      };
      expect(card.classes).toHaveLength(4);
      expect(card.prototypes.total).toBe(manifest.prototypes.length);
      expect(card.accuracy.validation).toEqual(manifest.metrics.val);
      expect(card.version).toBe(manifest.model.version);
      const proto = (await (await f('/prototypes/3')).json()) as {
        id: number;
        classId: number;
        images: { prototype: string };
      };
      expect(proto).toMatchObject({ id: 3, classId: manifest.prototypes[3].classId });
      const pic = await f(new URL(proto.images.prototype).pathname);
      expect(pic.status).toBe(200);
      expect(pic.headers.get('content-type')).toBe('image/webp');
      expect(pic.headers.get('cache-control')).toMatch(/max-age=\d+/);
      expect(pic.headers.get('x-request-id')).toBeTruthy();
      expect(new Uint8Array(await pic.arrayBuffer()).length).toBeGreaterThan(20);
      await expectError(await f('/prototypes/99'), 404, 'not_found');
      await expectError(await f('/prototypes/abc'), 404, 'not_found');
      await expectError(await f('/bundle/model/weights.bin'), 404, 'not_found');
      const doc = (await (await f('/openapi.json')).json()) as {
        paths: Record<string, Record<string, { parameters?: { name: string }[] }>>;
      };
      expect(Object.keys(doc.paths).sort()).toEqual(['/classify', '/healthz', '/model', '/prototypes/{id}']);
      expect(doc.paths['/classify'].post.parameters!.map((p) => p.name).sort()).toEqual(['evidence', 'top']);
      const home = await f('/');
      expect(home.headers.get('content-type')).toMatch(/text\/html/);
      expect(await home.text()).toMatch(/curl .*\/classify/);
      await expectError(await f('/nope'), 404, 'not_found');
    });

    it('answers CORS preflights and sets a request id on every response', async () => {
      const pre = await f('/classify', {
        method: 'OPTIONS',
        headers: { origin: 'https://birds.example', 'access-control-request-method': 'POST' },
      });
      expect(pre.status).toBe(204);
      expect(pre.headers.get('access-control-allow-origin')).toBe('*');
      expect(pre.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      const mine = await f('/healthz', { headers: { 'x-request-id': 'trace-42' } });
      expect(mine.headers.get('x-request-id')).toBe('trace-42');
    });

    it('answers HEAD and conditional GET for bundle files: ETag = the listed sha256, a match is 304', async () => {
      const crop = manifest.prototypes[2].files!.crop;
      const record = manifest.files.integrity!.find((r) => r.path === crop)!;
      const full = await f(`/bundle/${crop}`);
      expect(full.status).toBe(200);
      expect(full.headers.get('etag')).toBe(`"${record.sha256}"`);
      expect(new Uint8Array(await full.arrayBuffer()).length).toBe(record.bytes);
      const head = await f(`/bundle/${crop}`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(record.bytes));
      expect(head.headers.get('content-type')).toBe('image/webp');
      expect(head.headers.get('etag')).toBe(`"${record.sha256}"`);
      expect((await head.arrayBuffer()).byteLength).toBe(0);
      for (const inm of [`"${record.sha256}"`, `W/"${record.sha256}"`, `"other", "${record.sha256}"`, '*']) {
        const again = await f(`/bundle/${crop}`, { headers: { 'if-none-match': inm } });
        expect(again.status, inm).toBe(304);
        expect(again.headers.get('etag')).toBe(`"${record.sha256}"`);
        expect(again.headers.get('cache-control')).toMatch(/max-age=\d+/);
        expect((await again.arrayBuffer()).byteLength).toBe(0);
      }
      expect((await f(`/bundle/${crop}`, { headers: { 'if-none-match': '"stale"' } })).status).toBe(200);
      // The manifest is not in its own list: the store's ETag revalidates it.
      const m = await f('/bundle/manifest.json');
      const etag = m.headers.get('etag');
      expect(etag).toBeTruthy();
      await m.arrayBuffer();
      expect((await f('/bundle/manifest.json', { headers: { 'if-none-match': etag! } })).status).toBe(304);
      expect((await f('/bundle/manifest.json', { method: 'HEAD' })).status).toBe(200);
      await expectError(await f('/bundle/prototypes/nope.webp', { method: 'GET' }), 404, 'not_found');
    });

    // Last: it uses up the rate limit.
    it('answers 429 once the configured rate limit is spent', async () => {
      let status = 0;
      let n = 0;
      const t0 = Date.now();
      while (n < SUITE_RATE_LIMIT + 100) {
        const res = await post(f, null, 'image/png');
        n++;
        status = res.status;
        if (status === 429) {
          // The next token is back within a second at this rate (the limiter says when, not a fixed minute).
          expect(res.headers.get('retry-after')).toBe('1');
          expect(await expectError(res, 429, 'rate_limited')).toMatch(/try again in 1 s/);
          break;
        }
        await res.body?.cancel();
      }
      expect(status).toBe(429);
      // A full bucket, plus what refilled while the requests ran (the limit is per minute, refilled continuously).
      const refilled = Math.ceil(((Date.now() - t0) / 60_000) * SUITE_RATE_LIMIT);
      expect(n).toBeLessThanOrEqual(SUITE_RATE_LIMIT + 1 + refilled);
    });
  });
}

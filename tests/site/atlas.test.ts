import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { speciesSlug } from '@protoatlas/shared';
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

describe('atlas site built from a bundle', () => {
  let fx: Fixture;
  let out: string;
  let site: Served;
  let browser: Browser;

  beforeAll(async () => {
    fx = await tinyFixture();
    out = await mkdtemp(join(tmpdir(), 'protoatlas-site-'));
    // An API URL makes the try page offer both modes (nothing listens there: these tests never classify).
    await buildSite(fx.bundle, out, { PROTOATLAS_API: 'http://127.0.0.1:9/classify' });
    site = await serve(staticHandler(out));
    browser = await launchChromium();
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('writes one page per species and per prototype, with the bundle pictures and the widget', async () => {
    const m = fx.manifest;
    expect((await readdir(join(out, 'species'))).sort()).toEqual(
      [...m.classes.map((c) => speciesSlug(c.key)), 'index.html'].sort(),
    );
    expect((await readdir(join(out, 'prototypes'))).sort()).toEqual(
      [...m.prototypes.map((p) => String(p.id)), 'index.html'].sort(),
    );
    const p0 = m.prototypes[0];
    for (const f of [p0.files!.crop, p0.files!.source, p0.files!.heatmap, 'manifest.json', m.files.onnx!.fp32!.path]) {
      expect((await readFile(join(out, 'bundle', f))).length).toBeGreaterThan(0);
    }
    // The training model and backbone stay out of the site.
    expect(await readdir(join(out, 'bundle'))).not.toContain('model');
    expect(await readdir(join(out, 'widget', 'ort'))).toContain('ort-wasm-simd-threaded.wasm');
    // Every picture states its size (no layout shift) and loads lazily unless above the fold.
    const html = await readFile(join(out, 'prototypes', '0', 'index.html'), 'utf8');
    const imgs = html.match(/<img [^>]*>/g) ?? [];
    expect(imgs.length).toBe(3 + p0.nearest.train.length);
    for (const tag of imgs) expect(tag).toMatch(/ width="\d+" height="\d+"/);
    expect(imgs.filter((t) => t.includes('loading="lazy"')).length).toBe(p0.nearest.train.length);
  });

  it('renders every kind of page without console errors or failed requests', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = watchProblems(page);
    const m = fx.manifest;
    const slug = speciesSlug(m.classes[1].key);
    for (const [path, heading] of [
      ['/', /This looks like that/],
      ['/species/', /3 species/],
      [`/species/${slug}/`, new RegExp(m.classes[1].name)],
      ['/prototypes/', /6 prototypes/],
      ['/prototypes/2/', /Prototype 2/],
      ['/try/', /Try it on a photo/],
    ] as const) {
      await page.goto(site.url + path, { waitUntil: 'load' });
      await expect.poll(() => page.locator('h1').innerText()).toMatch(heading);
      await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight)); // bring lazy pictures in
      await page.waitForLoadState('networkidle');
      await screenshot(page, `atlas${path.replace(/\/$/, '').replaceAll('/', '-') || '-home'}`);
    }
    expect(problems).toEqual([]);
    // The model card shows accuracy and the training curves as charts.
    await page.goto(`${site.url}/`);
    const top1 = m.metrics.test?.top1 ?? m.metrics.val!.top1;
    expect(await page.locator('[data-metric="top1"]').innerText()).toBe(`${(top1 * 100).toFixed(1)}%`);
    expect(await page.locator('[data-metric="prototypes"]').innerText()).toBe('6');
    // The attached black box: what it is, and the paired difference on the same validation images.
    const b = m.metrics.baseline!;
    const pts = (v: number) => `${v > 0 ? '+' : v < 0 ? '−' : ''}${Math.abs(100 * v).toFixed(1)}`;
    expect(await page.locator('[data-metric="baseline-note"]').innerText()).toBe(
      'Bars: validation. Baseline: a black box for the tests (every third image wrong) (no prototypes). ' +
        `On the same ${b.paired!.n} validation images ProtoPNet scores ${pts(b.paired!.difference)} points against it ` +
        `(95% interval ${pts(b.paired!.interval95[0])} to ${pts(b.paired!.interval95[1])}; ` +
        `${b.paired!.onlyModel} only it gets right, ${b.paired!.onlyBaseline} only the baseline).`,
    );
    // Both bars are on validation, where the baseline was scored, even when the card leads with test.
    const bars = await page.locator('.cmp').first().locator('.row span:last-child').allInnerTexts();
    expect(bars).toEqual([`${(m.metrics.val!.top1 * 100).toFixed(1)}%`, `${(b.top1 * 100).toFixed(1)}%`]);
    expect(await page.locator('svg.chart path.line').count()).toBe(4); // 3 accuracy series + loss
    await page.close();
  });

  it('search finds a species; the pruned filter narrows the list', async () => {
    const page = await browser.newPage();
    const problems = watchProblems(page);
    await page.goto(`${site.url}/species/`);
    const target = fx.manifest.classes[2];
    const visible = () => page.locator('#species-list > li:visible a.cover').allInnerTexts();
    expect(await visible()).toHaveLength(3);
    // Words in any order, any case.
    const words = target.name.split(' ');
    await page.getByLabel('Search species').fill(`${words[words.length - 1]} ${words[0]}`.toUpperCase());
    expect(await visible()).toEqual([target.name]);
    expect(await page.locator('output[name="count"]').innerText()).toBe('1 of 3 species');
    await page.getByLabel('Search species').fill('no such bird');
    expect(await visible()).toEqual([]);
    await expect.poll(() => page.locator('#species-empty').isVisible()).toBe(true);
    await page.getByLabel('Search species').fill('');
    expect(await visible()).toHaveLength(3);
    const withPruned = fx.manifest.classes
      .filter((c) => fx.manifest.prototypes.some((p) => p.classId === c.id && p.pruned))
      .map((c) => c.name);
    // The fixture prunes (mode 'on'), and not in every species, so the filter has something to narrow.
    expect(withPruned.length).toBeGreaterThan(0);
    expect(withPruned.length).toBeLessThan(fx.manifest.classes.length);
    await page.getByLabel('Prototypes').selectOption('pruned');
    expect(await visible()).toEqual(withPruned);
    await page.getByLabel('Prototypes').selectOption('');
    await page.locator('#species-list a.cover', { hasText: target.name }).click();
    await page.waitForURL(`**/species/${speciesSlug(target.key)}/`);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('a prototype page shows its crop, source, heatmap, neighbours and weight chart', async () => {
    const page = await browser.newPage();
    const p = fx.manifest.prototypes[3];
    await page.goto(`${site.url}/prototypes/${p.id}/`);
    const sizes = await page.$$eval('#pictures img', (els) =>
      (els as HTMLImageElement[]).map((i) => [i.complete, i.naturalWidth > 0]),
    );
    expect(sizes).toEqual([
      [true, true],
      [true, true],
      [true, true],
    ]);
    const chart = page.locator('svg[data-bars]');
    expect(await chart.getAttribute('data-bars')).toBe(String(fx.manifest.classes.length));
    // The prototype's own class is the highlighted bar; the chart says its weight.
    expect(await chart.locator('path.own').getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+h/);
    expect(await chart.getAttribute('aria-label')).toContain(p.weights[p.classId].toFixed(3));
    const neighbours = page.locator('.neighbour');
    expect(await neighbours.count()).toBe(p.nearest.train.length);
    await neighbours.last().scrollIntoViewIfNeeded();
    await expect
      .poll(() =>
        neighbours.locator('img').evaluateAll((els) => (els as HTMLImageElement[]).every((i) => i.naturalWidth > 0)),
      )
      .toBe(true);
    const n0 = p.nearest.train[0];
    expect(await neighbours.first().locator('svg.where rect.box').getAttribute('x')).toBe(String(n0.box.x));
    expect(await page.locator('h1 .badge').getAttribute('data-status')).toBe(p.pruned ? 'pruned' : 'live');
    await page.close();
  });

  it('the try page offers both modes when built with an API, remote first, and shifts no layout', async () => {
    const page = await browser.newPage();
    const problems = watchProblems(page);
    await page.goto(`${site.url}/try/`);
    const w = page.locator('protoatlas-classifier');
    expect(await w.getAttribute('api')).toBe('http://127.0.0.1:9/classify');
    expect(await w.getAttribute('bundle')).toBe('/bundle/');
    expect(await w.locator('.mode').getAttribute('data-mode')).toBe('remote');
    expect(await w.getByLabel('Edge API').isChecked()).toBe(true);
    await w.getByText('In this browser').click();
    expect(await w.locator('.mode').getAttribute('data-mode')).toBe('local');
    expect(await w.locator('.mode').innerText()).toMatch(/Mode: local · onnxruntime-web/);
    // The camera button is for touch devices only.
    expect(await w.getByText('Take a photo').isVisible()).toBe(false);
    const shift = await page.evaluate(
      () =>
        new Promise<number>((done) => {
          let total = 0;
          new PerformanceObserver((l) =>
            l.getEntries().forEach((e) => (total += (e as unknown as { value: number }).value)),
          ).observe({ type: 'layout-shift', buffered: true });
          setTimeout(() => done(total), 300);
        }),
    );
    expect(shift).toBeLessThan(0.01);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('works without JavaScript (search hidden, everything else there) and by keyboard', async () => {
    const ctx = await browser.newContext({ javaScriptEnabled: false });
    const page = await ctx.newPage();
    await page.goto(`${site.url}/species/`);
    expect(await page.locator('#species-search').isVisible()).toBe(false);
    expect(await page.locator('#species-list > li').count()).toBe(3);
    await page.goto(`${site.url}/species/${speciesSlug(fx.manifest.classes[0].key)}/`);
    const own = fx.manifest.prototypes.filter((p) => p.classId === 0).length;
    expect(await page.locator('#prototypes + p + ul > li').count()).toBe(own);
    await ctx.close();
    // Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    const kb = await browser.newPage();
    await kb.goto(`${site.url}/`);
    await kb.keyboard.press('Tab');
    expect(await kb.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await kb.keyboard.press('Enter');
    expect(await kb.evaluate(() => document.activeElement?.id)).toBe('main');
    await kb.close();
  });
});

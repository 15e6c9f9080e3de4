/**
 * The atlas's review mode in a real browser, round trip: mark prototypes on
 * the static site, download the edits file, apply it (npm run edit's code),
 * rebuild the atlas from the new bundle and see each edited prototype's
 * history and the model card's version chain.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEdits, type Manifest } from '@protoatlas/shared';
import { readBundle } from '../../trainer/src/bundle/read-bundle.ts';
import { applyEdits } from '../../trainer/src/edit/apply-edits.ts';
import { editFixture, type EditFixture } from '../e2e/edit-fixture.ts';
import { buildSite, launchChromium, screenshot, serve, staticHandler, watchProblems, type Served } from './fixture.ts';

describe('atlas review mode', () => {
  let fx: EditFixture;
  let parent: Manifest;
  let work: string;
  let browser: Browser;
  const servers: Served[] = [];

  beforeAll(async () => {
    fx = await editFixture();
    parent = (await readBundle(join(fx.run, 'bundle'))).manifest;
    work = await mkdtemp(join(tmpdir(), 'protoatlas-review-'));
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    for (const s of servers) await s.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('marks, downloads the edits file, applies it, and the rebuilt atlas shows the history and versions', async () => {
    await buildSite(join(fx.run, 'bundle'), join(work, 'site1'));
    const site1 = await serve(staticHandler(join(work, 'site1')));
    servers.push(site1);
    const page = await browser.newPage({ acceptDownloads: true });
    const problems = watchProblems(page);
    // Leave a page only once its requests are done: navigating away aborts them (e.g. the favicon).
    const open = async (url: string) => {
      await page.goto(url);
      await page.waitForLoadState('networkidle');
    };
    const live = parent.prototypes.filter((p) => !p.pruned);
    const [drop, forbid] = [live[0].id, live[2].id];

    // Mark one prototype to drop and another's concept to forbid, with notes.
    for (const [id, label, note] of [
      [drop, 'Drop it', 'sky in the background'],
      [forbid, 'Forbid its concept', 'photo border'],
    ] as const) {
      await open(`${site1.url}/prototypes/${id}/`);
      const form = page.locator('form[data-review-form]');
      await expect.poll(() => form.isVisible()).toBe(true);
      await form.getByLabel(label).check();
      await form.getByLabel('Note').fill(note);
      await form.getByRole('button', { name: 'Mark' }).click();
      await expect
        .poll(() => form.locator('[data-status]').innerText())
        .toMatch(new RegExp(`^Marked: ${label === 'Drop it' ? 'drop' : 'forbid'} \\(${note}\\)`));
    }
    // A reload keeps the mark (localStorage), and the form shows it.
    await page.reload();
    await page.waitForLoadState('networkidle');
    expect(await page.locator('form[data-review-form] input[value="forbid"]').isChecked()).toBe(true);

    // The review page lists the marks and the candidates, and downloads the file.
    await open(`${site1.url}/review/`);
    await expect.poll(() => page.locator('tr[data-mark]').count()).toBe(2);
    expect(await page.locator('tr[data-mark]').allInnerTexts()).toEqual([
      expect.stringContaining('drop'),
      expect.stringContaining('forbid'),
    ]);
    const flagged = parent.prototypes.filter((p) => !p.pruned && (p.review?.length ?? 0) > 0);
    expect(
      new Set(
        await page
          .locator('[data-candidate]')
          .evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.candidate)),
      ),
    ).toEqual(new Set(flagged.map((p) => String(p.id))));
    expect(await page.locator('[data-command]').inputValue()).toContain(
      'npm run edit --workspace trainer -- <run dir> --edits edits-',
    );
    await screenshot(page, 'review-marks');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: /^Download edits-/ }).click(),
    ]);
    const saved = join(work, download.suggestedFilename());
    await download.saveAs(saved);
    const edits = parseEdits(JSON.parse(await readFile(saved, 'utf8')), saved);
    expect(edits.model).toEqual({ id: parent.model.id, version: parent.model.version });
    expect(edits.edits).toEqual([
      { action: 'drop', prototype: drop, reason: 'sky in the background' },
      expect.objectContaining({
        action: 'forbid',
        fromPrototype: forbid,
        note: 'photo border',
        patches: expect.arrayContaining([
          {
            imageId: parent.prototypes[forbid].source!.imageId,
            row: parent.prototypes[forbid].source!.patch.row,
            col: parent.prototypes[forbid].source!.patch.col,
          },
        ]),
      }),
    ]);
    expect(problems).toEqual([]);

    // Apply the downloaded file and rebuild the atlas from the new version.
    await applyEdits({ run: fx.run, out: join(work, 'v2'), edits: saved, quiet: true });
    const child = (await readBundle(join(work, 'v2', 'bundle'))).manifest;
    await buildSite(join(work, 'v2', 'bundle'), join(work, 'site2'));
    const site2 = await serve(staticHandler(join(work, 'site2')));
    servers.push(site2);

    await open(`${site2.url}/prototypes/${drop}/`);
    expect(await page.locator('h1 [data-status]').innerText()).toBe('pruned');
    const history = page.locator('ol.history li');
    expect(await history.count()).toBe(1);
    expect(await history.innerText()).toBe(`drop in version ${child.model.version}: sky in the background`);
    await open(`${site2.url}/prototypes/${forbid}/`);
    expect(await page.locator('ol.history li[data-action="forbid"]').innerText()).toContain('forbade its concept');

    await open(`${site2.url}/`);
    const rows = page.locator('table[data-versions] tbody tr');
    expect(await rows.evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.version))).toEqual([
      parent.model.version,
      child.model.version,
    ]);
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    expect(await rows.nth(0).innerText()).toContain(pct(parent.metrics.val!.top1));
    expect(await rows.nth(1).innerText()).toContain(pct(child.metrics.val!.top1));
    expect(await rows.nth(1).innerText()).toContain('1 dropped, 1 concept forbidden');
    await screenshot(page, 'review-versions');
    // Marks belong to a version: the new atlas starts with none.
    await open(`${site2.url}/review/`);
    await expect.poll(() => page.locator('[data-empty]').isVisible()).toBe(true);
    expect(problems).toEqual([]);
    await page.close();
  }, 300_000);
});

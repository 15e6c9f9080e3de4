/**
 * Prototype debugging end to end on a tiny trained run: an edits file applied
 * with applyEdits writes a new run and bundle version that records its parent,
 * leaves the parent untouched, and does what each edit says.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logSimilarity, prototypeConcept, type EditsFile, type Manifest } from '@protoatlas/shared';
import { readBundle } from '../../trainer/src/bundle/read-bundle.ts';
import { applyEdits, type EditReport } from '../../trainer/src/edit/apply-edits.ts';
import { patchFeatures, resolvePatches } from '../../trainer/src/edit/concept-features.ts';
import { conceptMatch } from '../../trainer/src/edit/concept-match.ts';
import { loadModel, readModelJson } from '../../trainer/src/model/model-file.ts';
import { prepareData } from '../../trainer/src/model/prepare-data.ts';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { createNodeApp } from '../../edge/src/node.ts';
import { DEFAULT_CONFIG } from '../../edge/src/config.ts';
import { editFixture, type EditFixture } from './edit-fixture.ts';

const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('npm run edit (applyEdits) on a tiny run', () => {
  let fx: EditFixture;
  let parent: Manifest;
  let work: string;
  let parentSha: string;
  let parentManifestText: string;

  beforeAll(async () => {
    fx = await editFixture();
    parent = (await readBundle(join(fx.run, 'bundle'))).manifest;
    parentSha = await sha(join(fx.run, 'model', 'weights.bin'));
    parentManifestText = await readFile(join(fx.run, 'bundle', 'manifest.json'), 'utf8');
    work = await mkdtemp(join(tmpdir(), 'protoatlas-edit-'));
  }, 300_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const file = (edits: EditsFile['edits']): EditsFile => ({
    schema: 'protoatlas-edits',
    version: 1,
    model: { id: parent.model.id, version: parent.model.version },
    edits,
  });

  describe('drop and relabel', () => {
    let report: EditReport;
    let child: Manifest;
    let dropped: number;
    let moved: number;
    let target: number;
    const dropAndRelabel = () =>
      file([
        { action: 'drop', prototype: dropped, reason: 'sky in the background' },
        { action: 'relabel', prototype: moved, classId: target, note: 'its neighbours say so' },
      ]);

    beforeAll(async () => {
      const live = parent.prototypes.filter((p) => !p.pruned);
      dropped = live[0].id;
      moved = live[live.length - 1].id;
      target = (parent.prototypes[moved].classId + 1) % parent.classes.length;
      report = await applyEdits({ run: fx.run, out: join(work, 'v2'), edits: dropAndRelabel(), quiet: true });
      child = (await readBundle(join(work, 'v2', 'bundle'))).manifest;
    }, 300_000);

    it('leaves the parent run and bundle exactly as they were', async () => {
      expect(await sha(join(fx.run, 'model', 'weights.bin'))).toBe(parentSha);
      expect(await readFile(join(fx.run, 'bundle', 'manifest.json'), 'utf8')).toBe(parentManifestText);
    });

    it('records the parent, the edits and the version chain with accuracy per version', async () => {
      expect(child.model.parent).toEqual({ id: parent.model.id, version: parent.model.version });
      expect(child.model.version).not.toBe(parent.model.version);
      expect(child.lineage!.map((v) => v.version)).toEqual([parent.model.version, child.model.version]);
      expect(child.lineage![0]).toMatchObject({
        parent: null,
        val: parent.metrics.val,
        livePrototypes: parent.prototypes.filter((p) => !p.pruned).length,
      });
      expect(child.lineage![1]).toMatchObject({
        parent: parent.model.version,
        edits: { drop: 1, relabel: 1, forbid: 0, keep: 0 },
        val: child.metrics.val,
      });
      const { json } = await readModelJson(join(work, 'v2'));
      expect(json.lineage!.parent).toMatchObject({
        id: parent.model.id,
        version: parent.model.version,
        weightsSha256: parentSha,
      });
      expect(json.lineage!.edits.edits).toHaveLength(2);
      expect(JSON.parse(await readFile(join(work, 'v2', 'edits.json'), 'utf8')).edits).toHaveLength(2);
      expect(report.before.val).toEqual(parent.metrics.val);
      expect(report.after.val).toEqual(child.metrics.val);
      expect(report.after.livePrototypes).toBe(report.before.livePrototypes - 1);
    });

    it('silences the dropped prototype and moves the relabelled one', async () => {
      const d = child.prototypes[dropped];
      expect(d.pruned).toBe(true);
      expect(d.prunedReason).toContain('sky in the background');
      expect(d.weights.every((w) => w === 0)).toBe(true);
      expect(d.history).toEqual([{ version: child.model.version, action: 'drop', note: 'sky in the background' }]);
      const r = child.prototypes[moved];
      expect(r.classId).toBe(target);
      expect(r.history![0]).toMatchObject({ version: child.model.version, action: 'relabel' });
      expect(r.history![0].note).toContain(child.classes[target].name);
      // Refit from +1 to its new class: it votes for its new class.
      expect(r.weights[target]).toBeGreaterThan(0);
      expect(r.weights[target]).toBe(Math.max(...r.weights));
      // The trainer model agrees: the class is loaded back, the dropped row is zero.
      await initBackend('wasm', { quiet: true });
      const loaded = await loadModel(join(work, 'v2'));
      expect(loaded.head.protoClass[moved]).toBe(target);
      const C = child.classes.length;
      expect(
        Array.from((loaded.head.lastLayer.dataSync() as Float32Array).subarray(dropped * C, (dropped + 1) * C)),
      ).toEqual(new Array(C).fill(0));
      // Purity of the relabelled prototype is recomputed against its new class.
      const own = r.nearest.train.filter((n) => n.classId === target).length;
      expect(r.purity).toBeCloseTo(own / r.nearest.train.length, 12);
    });

    it('reuses the parent pictures and neighbours: no prototype moved', async () => {
      for (const p of child.prototypes) {
        const q = parent.prototypes[p.id];
        expect(p.source).toEqual(q.source);
        expect(p.nearest).toEqual(q.nearest);
        expect(p.files).toEqual(q.files);
      }
      const crop = child.prototypes[moved].files!.crop;
      expect(await sha(join(work, 'v2', 'bundle', crop))).toBe(await sha(join(fx.run, 'bundle', crop)));
    });

    it('a second edit of the same parent refits on the cached similarities, to the same weights', async () => {
      const again = await applyEdits({
        run: fx.run,
        out: join(work, 'v2-again'),
        edits: dropAndRelabel(),
        quiet: true,
        skipBundle: true,
      });
      expect(again.similaritiesCached).toBe(true);
      expect(await sha(join(work, 'v2-again', 'model', 'weights.bin'))).toBe(
        await sha(join(work, 'v2', 'model', 'weights.bin')),
      );
    });

    it('a refit with its own rate and epochs records them, the dropped row still zero', async () => {
      await applyEdits({
        run: fx.run,
        out: join(work, 'v2-refit'),
        edits: dropAndRelabel(),
        quiet: true,
        skipBundle: true,
        refit: { lr: 0.05, epochs: 2 },
      });
      const summary = (dir: string) =>
        readFile(join(work, dir, 'summary.json'), 'utf8').then((t) => JSON.parse(t).edit.refit);
      const [own, stage3] = [await summary('v2-refit'), await summary('v2')];
      expect(own).toMatchObject({ lr: 0.05, epochs: 2 });
      expect(own.epoch).toBeLessThanOrEqual(2);
      expect(stage3.lr).toBe((await readModelJson(fx.run)).config.lastLayer.lr);
      const loaded = await loadModel(join(work, 'v2-refit'));
      const C = loaded.head.spec.numClasses;
      const w = loaded.head.lastLayer.dataSync() as Float32Array;
      expect(Array.from(w.subarray(dropped * C, (dropped + 1) * C)).every((v) => v === 0)).toBe(true);
    });

    it('the edge reports the version and its parent', async () => {
      const card = async (dir: string) =>
        (await (await createNodeApp(dir, DEFAULT_CONFIG).request('/model')).json()) as {
          version: string;
          parent: unknown;
          versions: { version: string; validation: unknown }[];
        };
      const edited = await card(join(work, 'v2', 'bundle'));
      expect(edited.version).toBe(child.model.version);
      expect(edited.parent).toEqual({ id: parent.model.id, version: parent.model.version });
      expect(edited.versions.map((v) => v.version)).toEqual([parent.model.version, child.model.version]);
      expect(edited.versions[0].validation).toEqual(parent.metrics.val);
      const proto = (await (
        await createNodeApp(join(work, 'v2', 'bundle'), DEFAULT_CONFIG).request(`/prototypes/${dropped}`)
      ).json()) as { pruned: boolean; history: unknown[] };
      expect(proto.pruned).toBe(true);
      expect(proto.history).toEqual(child.prototypes[dropped].history);
      const original = await card(join(fx.run, 'bundle'));
      expect(original.parent).toBeNull();
      expect(original.versions).toEqual([]);
    });
  });

  it('forbidding a concept pushes every prototype off it and lowers its similarity', async () => {
    const live = parent.prototypes.filter((p) => !p.pruned);
    const from = live[1].id;
    const concept = prototypeConcept(parent.prototypes[from]);
    const report = await applyEdits({
      run: fx.run,
      out: join(work, 'forbid'),
      edits: file([{ action: 'forbid', concept: 'this prototype', patches: concept, fromPrototype: from }]),
      quiet: true,
    });
    expect(report.counts.forbid).toBe(1);
    expect(report.forget!.length).toBeGreaterThan(0);
    // The forgetting term fell while fine-tuning.
    expect(report.forget![report.forget!.length - 1].forgetting).toBeLessThan(report.forget![0].forgetting);
    const child = (await readBundle(join(work, 'forbid', 'bundle'))).manifest;
    expect(child.lineage![1].edits.forbid).toBe(1);
    expect(child.prototypes[from].history!.some((h) => h.action === 'forbid')).toBe(true);
    // No prototype was re-pushed onto a forbidden patch.
    const banned = new Set(concept.map((c) => `${c.imageId}@${c.row},${c.col}`));
    const { json } = await readModelJson(join(work, 'forbid'));
    for (const p of json.prototypes!) expect(banned.has(`${p.imageId}@${p.row},${p.col}`)).toBe(false);
    expect(
      parent.prototypes.some(
        (p) => p.source && banned.has(`${p.source.imageId}@${p.source.patch.row},${p.source.patch.col}`),
      ),
    ).toBe(true);
    // Before, the prototype sat on its own source patch (similarity log(1/eps)); after, no live prototype comes close.
    await initBackend('wasm', { quiet: true });
    const before = await loadModel(fx.run);
    const after = await loadModel(join(work, 'forbid'));
    const data = await prepareData({ ...before.config, data: { ...before.config.data, flip: false } }, fx.data, {
      quiet: true,
      splits: ['train', 'val'],
      backboneWeights: before.backboneWeights,
    });
    const splits = [{ name: 'train', items: data.itemsBySplit.train, source: data.sources.train! }];
    const features = patchFeatures(resolvePatches(concept, splits, 'concept'), splits);
    const none = new Array<boolean>(parent.prototypes.length).fill(false);
    const b = await conceptMatch(before.head, none, features, data.sources.val!);
    const a = await conceptMatch(after.head, none, features, data.sources.val!);
    expect(Math.max(...b.perPatch)).toBeGreaterThan(logSimilarity(1e-3));
    const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
    expect(mean(a.perPatch)).toBeLessThan(mean(b.perPatch));
    expect(Math.max(...a.perPatch)).toBeLessThan(Math.max(...b.perPatch));
    // The edit's own report says the same, measured on the model it saved.
    const said = report.concepts!.forbidden!;
    said.before.forEach((x, i) => expect(x).toBeCloseTo(b.perPatch[i], 3));
    said.after.forEach((x, i) => expect(x).toBeCloseTo(a.perPatch[i], 3));
    expect(report.concepts!.kept).toBeNull();
  }, 300_000);

  it('a kept concept stays matched while a forbidden one is forgotten in the same edit', async () => {
    const live = parent.prototypes.filter((p) => !p.pruned);
    const [f, k] = [live[1], live.find((p) => p.classId !== live[1].classId)!];
    const report = await applyEdits({
      run: fx.run,
      out: join(work, 'forbid-keep'),
      edits: file([
        { action: 'forbid', concept: 'this one', patches: prototypeConcept(f), fromPrototype: f.id },
        { action: 'keep', concept: 'that one', patches: prototypeConcept(k), fromPrototype: k.id },
      ]),
      quiet: true,
    });
    const max = (xs: number[]) => Math.max(...xs);
    const { forbidden, kept } = report.concepts!;
    expect(forbidden!.after.length).toBe(prototypeConcept(f).length);
    expect(kept!.after.length).toBe(prototypeConcept(k).length);
    expect(max(forbidden!.after)).toBeLessThan(max(forbidden!.before));
    expect(max(kept!.after)).toBeGreaterThan(max(forbidden!.after));
    const child = (await readBundle(join(work, 'forbid-keep', 'bundle'))).manifest;
    expect(child.lineage![1].edits).toEqual({ drop: 0, relabel: 0, forbid: 1, keep: 1 });
    expect(child.prototypes[k.id].history!.map((h) => h.action)).toContain('keep');
  }, 300_000);

  it('refuses bad edits with a message naming the field, and never overwrites a run', async () => {
    const out = join(work, 'bad');
    await expect(
      applyEdits({ run: fx.run, out, edits: file([{ action: 'drop', prototype: 999, reason: 'x' }]), quiet: true }),
    ).rejects.toThrow(/edits\.0\.prototype: 999 is not a prototype/);
    await expect(
      applyEdits({ run: fx.run, out, edits: file([{ action: 'relabel', prototype: 0, classId: 42 }]), quiet: true }),
    ).rejects.toThrow(/edits\.0\.classId: 42 is not a class/);
    await expect(
      applyEdits({
        run: fx.run,
        out,
        edits: { ...file([{ action: 'drop', prototype: 0, reason: 'x' }]), model: { id: 'other', version: '1' } },
        quiet: true,
      }),
    ).rejects.toThrow(/--force/);
    await expect(
      applyEdits({
        run: fx.run,
        out: fx.run,
        edits: file([{ action: 'drop', prototype: 0, reason: 'x' }]),
        quiet: true,
      }),
    ).rejects.toThrow(/never change/);
    await expect(
      applyEdits({
        run: fx.run,
        out: join(work, 'v2'),
        edits: file([{ action: 'drop', prototype: 0, reason: 'x' }]),
        quiet: true,
      }),
    ).rejects.toThrow(/already holds a model/);
    const broken = join(work, 'broken.json');
    await writeFile(
      broken,
      '{"schema": "protoatlas-edits", "version": 1, "edits": [{"action": "drop", "prototype": 1}]',
    );
    await expect(applyEdits({ run: fx.run, out, edits: broken, quiet: true })).rejects.toThrow(/not valid JSON/);
    await writeFile(
      broken,
      JSON.stringify({ schema: 'protoatlas-edits', version: 1, edits: [{ action: 'drop', prototype: 1 }] }),
    );
    await expect(applyEdits({ run: fx.run, out, edits: broken, quiet: true })).rejects.toThrow(
      /broken\.json is not a valid ProtoAtlas edits file:\n {2}edits\.0\.reason/,
    );
  }, 120_000);
});

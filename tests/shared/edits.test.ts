import { describe, expect, it } from 'vitest';
import { checkEdits, editCounts, EditsError, parseEdits, prototypeConcept, type EditsFile } from '@protoatlas/shared';
import { editCommand, editsFromMarks, loadMarks, saveMarks, storageKey } from '../../site/src/lib/review-store.ts';
import { tinyManifest } from '../support/tiny-manifest.ts';

const model = { prototypes: 4, classes: 2, grid: { height: 7, width: 7 } };
const valid = (): EditsFile => ({
  schema: 'protoatlas-edits',
  version: 1,
  model: { id: 'demo-0123abcd', version: '2026.11.26+0123abcd' },
  edits: [
    { action: 'drop', prototype: 1, reason: 'sky' },
    { action: 'relabel', prototype: 2, classId: 0 },
    { action: 'forbid', concept: 'border', patches: [{ imageId: 'a.png', row: 0, col: 6 }], fromPrototype: 3 },
    { action: 'keep', concept: 'beak', patches: [{ imageId: 'b.png', row: 3, col: 3 }] },
  ],
});

describe('edits file', () => {
  it('round-trips a valid file and counts its actions', () => {
    const e = parseEdits(JSON.parse(JSON.stringify(valid())));
    expect(e).toEqual(valid());
    expect(() => checkEdits(e, model)).not.toThrow();
    expect(editCounts(e)).toEqual({ drop: 1, relabel: 1, forbid: 1, keep: 1 });
  });

  it('names each bad field', () => {
    const bad = {
      schema: 'protoatlas-edits',
      version: 2,
      edits: [
        { action: 'drop', prototype: -1, reason: ' ' },
        { action: 'rename', prototype: 0 },
      ],
    };
    let err: unknown;
    try {
      parseEdits(bad, 'my-edits.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EditsError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^my-edits\.json is not a valid ProtoAtlas edits file:/);
    expect(msg).toContain('version');
    expect(msg).toContain('edits.0.prototype');
    expect(msg).toContain('edits.0.reason: say why the prototype is dropped');
    expect(msg).toContain('edits.1.action');
    expect(() => parseEdits({ schema: 'protoatlas-edits', version: 1, edits: [] })).toThrow(/at least one edit/);
  });

  it('checks ids, classes, grid cells and conflicting edits against the model', () => {
    const e = valid();
    e.edits.push(
      { action: 'drop', prototype: 2, reason: 'twice' },
      { action: 'drop', prototype: 4, reason: 'x' },
      { action: 'relabel', prototype: 0, classId: 2 },
    );
    (e.edits[2] as { patches: { row: number }[] }).patches[0].row = 7;
    let message = '';
    try {
      checkEdits(e, model, 'e.json');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message.split('\n').slice(1)).toEqual([
      '  edits.2.patches.0: cell (7, 6) lies outside the 7x7 feature grid',
      '  edits.4.prototype: prototype 2 already has a "relabel" edit; give each prototype one drop or relabel',
      '  edits.5.prototype: 4 is not a prototype (the model has 4: 0-3)',
      '  edits.6.classId: 2 is not a class (the model has 2)',
    ]);
  });

  it('a prototype concept is its source patch and nearest training patches', () => {
    const p = tinyManifest().prototypes[1];
    expect(prototypeConcept(p)).toEqual([
      { imageId: 'img1', row: 1, col: 2 },
      { imageId: 'a', row: 0, col: 0 },
    ]);
    expect(prototypeConcept({ ...p, source: null, nearest: { train: [], val: [] } })).toEqual([]);
  });
});

describe('review marks (atlas review mode)', () => {
  const ref = { id: 'demo-0123abcd', version: '2026.11.26+0123abcd' };
  const memory = () => {
    const m = new Map<string, string>();
    return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), map: m };
  };

  it('stores marks per model version and turns them into a valid edits file', () => {
    const store = memory();
    const concept = [{ imageId: 'x.png', row: 1, col: 1 }];
    saveMarks(store, ref, {
      '10': { action: 'forbid', note: 'sky', concept },
      '2': { action: 'drop', note: '', concept: [] },
      '3': { action: 'keep', note: '', concept },
    });
    expect([...store.map.keys()]).toEqual([storageKey(ref)]);
    const marks = loadMarks(store, ref);
    expect(loadMarks(store, { ...ref, version: 'other' })).toEqual({});
    const file = editsFromMarks(marks, ref);
    expect(parseEdits(JSON.parse(JSON.stringify(file)))).toEqual(file);
    expect(file.model).toEqual(ref);
    expect(file.edits).toEqual([
      { action: 'drop', prototype: 2, reason: 'marked for removal in the atlas review' },
      { action: 'keep', concept: 'prototype 3', patches: concept, fromPrototype: 3 },
      { action: 'forbid', concept: 'prototype 10: sky', patches: concept, fromPrototype: 10, note: 'sky' },
    ]);
    expect(editCommand(ref)).toBe(
      'npm run edit --workspace trainer -- <run dir> --edits edits-demo-0123abcd.json --out <new run dir>',
    );
  });

  it('ignores unreadable or foreign entries in storage', () => {
    const store = memory();
    store.setItem(storageKey(ref), '{not json');
    expect(loadMarks(store, ref)).toEqual({});
    store.setItem(
      storageKey(ref),
      JSON.stringify({ abc: { action: 'drop' }, '4': { action: 'explode' }, '5': { action: 'drop', note: 3 } }),
    );
    expect(loadMarks(store, ref)).toEqual({ '5': { action: 'drop', note: '', concept: [] } });
  });
});

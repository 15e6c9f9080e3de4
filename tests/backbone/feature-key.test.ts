import { copyFile, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGENET_224 } from '@protoatlas/shared';
import { featureCacheKey, type FeatureKeyInput } from '../../trainer/src/backbone/feature-key.ts';

describe('featureCacheKey', () => {
  let dir: string;
  const input = (paths: string[]): FeatureKeyInput => ({
    backboneHash: 'b',
    preprocess: IMAGENET_224,
    flip: true,
    encoding: 'float16',
    items: paths.map((path, i) => ({ id: `img${i}`, path, label: 0 })),
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'feature-key-'));
    await writeFile(join(dir, 'a.jpg'), 'image a');
    await writeFile(join(dir, 'b.jpg'), 'image b');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('keeps the key when only the files’ times change (a copied dataset reuses its cache)', async () => {
    const paths = [join(dir, 'a.jpg'), join(dir, 'b.jpg')];
    const before = await featureCacheKey(input(paths));
    await utimes(paths[0], new Date(2001, 1, 1), new Date(2001, 1, 1));
    expect(await featureCacheKey(input(paths))).toBe(before);
  });

  it('changes the key when a file’s bytes change, even at the same size', async () => {
    const paths = [join(dir, 'a.jpg'), join(dir, 'b.jpg')];
    const before = await featureCacheKey(input(paths));
    await copyFile(paths[1], join(dir, 'a.jpg'));
    const after = await featureCacheKey(input(paths));
    expect(after).not.toBe(before);
    await writeFile(paths[0], 'image a');
    expect(await featureCacheKey(input(paths))).toBe(before);
  });

  it('gives a missing file a key of its own instead of failing', async () => {
    const present = await featureCacheKey(input([join(dir, 'a.jpg')]));
    const missing = await featureCacheKey(input([join(dir, 'nope.jpg')]));
    expect(missing).toMatch(/^[0-9a-f]{64}$/);
    expect(missing).not.toBe(present);
  });
});

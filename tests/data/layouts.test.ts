import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadCubCropped } from '../../trainer/src/data/cub-cropped.ts';
import { DatasetError } from '../../trainer/src/data/errors.ts';
import { loadFolder } from '../../trainer/src/data/folder.ts';
import { describeDataset, loadDataset } from '../../trainer/src/data/load-dataset.ts';
import { cleanup, tempDir, writeSolid, writeText } from './fixtures.ts';

let root: string;
beforeEach(async () => {
  root = await tempDir('layouts');
});
afterEach(() => cleanup(root));

async function images(dir: string, names: string[]): Promise<void> {
  for (const n of names) await writeSolid(join(dir, n), 8, 6, [200, 100, 50]);
}

describe('pre-cropped CUB layout', () => {
  beforeEach(async () => {
    await images(join(root, 'train_cropped', '002.Laysan_Albatross'), ['L_1.jpg', 'L_2.jpg', 'L_3.jpg']);
    await images(join(root, 'train_cropped', '001.Black_footed_Albatross'), ['B_1.jpg', 'B_2.jpg', 'B_3.jpg']);
    await images(join(root, 'test_cropped', '002.Laysan_Albatross'), ['L_9.jpg']);
  });

  it('takes classes from the sorted folder names and test from test_cropped', async () => {
    const ds = await loadCubCropped(root);
    expect(ds.layout).toBe('cub-cropped');
    expect(ds.classes).toEqual(['001.Black_footed_Albatross', '002.Laysan_Albatross']);
    expect(ds.splits.train.map((i) => [i.id, i.label])).toEqual([
      ['train_cropped/001.Black_footed_Albatross/B_1.jpg', 0],
      ['train_cropped/001.Black_footed_Albatross/B_2.jpg', 0],
      ['train_cropped/001.Black_footed_Albatross/B_3.jpg', 0],
      ['train_cropped/002.Laysan_Albatross/L_1.jpg', 1],
      ['train_cropped/002.Laysan_Albatross/L_2.jpg', 1],
      ['train_cropped/002.Laysan_Albatross/L_3.jpg', 1],
    ]);
    expect(ds.splits.test.map((i) => [i.id, i.label])).toEqual([['test_cropped/002.Laysan_Albatross/L_9.jpg', 1]]);
    expect(ds.splits.train[0].box).toBeUndefined();
    expect(ds.splits.train[0].path).toBe(join(root, 'train_cropped', '001.Black_footed_Albatross', 'B_1.jpg'));
  });

  it('uses CUB image ids from meta/images.txt when present', async () => {
    await writeText(
      join(root, 'meta', 'images.txt'),
      '11 001.Black_footed_Albatross/B_1.jpg\n12 001.Black_footed_Albatross/B_2.jpg\n40 002.Laysan_Albatross/L_9.jpg\n',
    );
    const ds = await loadCubCropped(root);
    expect(ds.splits.train.map((i) => i.id).slice(0, 3)).toEqual([
      '11',
      '12',
      'train_cropped/001.Black_footed_Albatross/B_3.jpg',
    ]);
    expect(ds.splits.test[0].id).toBe('40');
  });

  it('an empty class folder is a DatasetError naming the folder', async () => {
    await mkdir(join(root, 'train_cropped', '003.Sooty_Albatross'));
    const err = await loadCubCropped(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).message).toContain(join(root, 'train_cropped', '003.Sooty_Albatross'));
    expect((err as Error).message).toContain('no images');
  });

  it('a test class unknown to train is a DatasetError', async () => {
    await images(join(root, 'test_cropped', '009.Mystery'), ['M.jpg']);
    await expect(loadCubCropped(root)).rejects.toThrow(/009\.Mystery/);
  });

  it('is detected by loadDataset, which holds out validation from train only', async () => {
    const ds = await loadDataset(root, { valPerClass: 1, seed: 1 });
    expect(ds.layout).toBe('cub-cropped');
    expect(ds.splits.train).toHaveLength(4);
    expect(ds.splits.val).toHaveLength(2);
    expect(ds.splits.test).toHaveLength(1);
    expect(describeDataset(ds)).toBe(`cub-cropped at ${root}: 2 classes, 4 train / 2 val / 1 test images, 0 skipped`);
  });
});

describe('generic folder layout', () => {
  it('without train/: every class folder is train; non-images are skipped', async () => {
    await images(join(root, 'cats'), ['a.png', 'b.jpeg']);
    await images(join(root, 'dogs'), ['c.JPG']);
    await images(join(root, 'dogs', 'puppies'), ['d.webp']);
    await writeText(join(root, 'dogs', 'readme.md'), 'hi');
    await writeText(join(root, 'dogs', '.DS_Store'), '');
    await writeText(join(root, 'LICENSE'), 'top-level files are not in any class');
    const ds = await loadFolder(root);
    expect(ds.layout).toBe('folder');
    expect(ds.classes).toEqual(['cats', 'dogs']);
    expect(ds.splits.train.map((i) => [i.id, i.label])).toEqual([
      ['cats/a.png', 0],
      ['cats/b.jpeg', 0],
      ['dogs/c.JPG', 1],
      ['dogs/puppies/d.webp', 1],
    ]);
    expect(ds.splits.test).toEqual([]);
    expect(ds.skipped.map((s) => s.path)).toEqual([join(root, 'dogs', 'readme.md')]);
    expect(ds.skipped[0].reason).toContain('not an image');
  });

  it('with train/ val/ test/: uses them as splits, and loadDataset keeps the given val split', async () => {
    await images(join(root, 'train', 'a'), ['1.png', '2.png', '3.png']);
    await images(join(root, 'train', 'b'), ['1.png', '2.png', '3.png']);
    await images(join(root, 'val', 'b'), ['v.png']);
    await images(join(root, 'test', 'a'), ['t.png']);
    const ds = await loadDataset(root, { valPerClass: 2, seed: 0 });
    expect(ds.layout).toBe('folder');
    expect(ds.classes).toEqual(['a', 'b']);
    expect(ds.splits.train).toHaveLength(6);
    expect(ds.splits.val.map((i) => [i.id, i.label])).toEqual([['val/b/v.png', 1]]);
    expect(ds.splits.test.map((i) => [i.id, i.label])).toEqual([['test/a/t.png', 0]]);
  });

  it('an empty train class folder is a DatasetError naming it', async () => {
    await images(join(root, 'a'), ['1.png']);
    await mkdir(join(root, 'b'));
    await expect(loadFolder(root)).rejects.toThrow(join(root, 'b'));
  });
});

describe('loadDataset layout detection', () => {
  it('a missing root is a DatasetError naming it', async () => {
    const missing = join(root, 'nope');
    const err = await loadDataset(missing, { valPerClass: 0, seed: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).message).toContain(missing);
    expect((err as Error).message).toContain('does not exist');
  });

  it('a folder matching no layout lists the expected layouts', async () => {
    await writeText(join(root, 'photo.jpg'), 'x');
    const err = await loadDataset(root, { valPerClass: 0, seed: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    const msg = (err as Error).message;
    expect(msg).toContain('no known dataset layout');
    for (const word of ['CUB-200-2011', 'train_cropped', 'synthetic.json', 'one folder per class'])
      expect(msg).toContain(word);
  });
});

describe('linked datasets', () => {
  it('follows symbolic links to class folders', async () => {
    const { mkdtemp, mkdir, symlink, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const sharpMod = (await import('sharp')).default;
    const real = await mkdtemp(join(tmpdir(), 'protoatlas-real-'));
    const linked = await mkdtemp(join(tmpdir(), 'protoatlas-linked-'));
    for (const c of ['001.A', '002.B']) {
      await mkdir(join(real, c));
      await writeFile(
        join(real, c, 'x.png'),
        await sharpMod({ create: { width: 4, height: 4, channels: 3, background: '#888' } })
          .png()
          .toBuffer(),
      );
      await mkdir(join(linked, 'train_cropped'), { recursive: true });
      await symlink(join(real, c), join(linked, 'train_cropped', c));
    }
    const { loadDataset } = await import('../../trainer/src/data/load-dataset.ts');
    const ds = await loadDataset(linked, { valPerClass: 0, seed: 0 });
    expect(ds.classes).toEqual(['001.A', '002.B']);
    expect(ds.splits.train).toHaveLength(2);
  });
});

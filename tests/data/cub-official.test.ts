import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadCubOfficial } from '../../trainer/src/data/cub-official.ts';
import { decodeImage, decodeMany } from '../../trainer/src/data/decode.ts';
import { DatasetError } from '../../trainer/src/data/errors.ts';
import { loadDataset } from '../../trainer/src/data/load-dataset.ts';
import { cleanup, pixelAt, tempDir, writeGradientPng, writeText } from './fixtures.ts';

const CLASSES = ['001.Red_Bird', '002.Blue_Bird', '003.Green_Bird'];

/**
 * A 3-class CUB_200_2011 copy: 3 images per class (ids 1..9), 40x30 gradient PNGs,
 * image 3k+1 of each class is a test image. Boxes are floats, one reaches past the edge.
 */
async function writeCubFixture(root: string): Promise<string> {
  const base = join(root, 'CUB_200_2011');
  const images: string[] = [];
  const labels: string[] = [];
  const split: string[] = [];
  const boxes: string[] = [];
  for (let c = 0; c < 3; c++) {
    for (let k = 0; k < 3; k++) {
      const id = c * 3 + k + 1;
      const rel = `${CLASSES[c]}/${CLASSES[c].slice(4)}_${id}.png`;
      await writeGradientPng(join(base, 'images', rel), 40, 30, id);
      images.push(`${id} ${rel}`);
      labels.push(`${id} ${c + 1}`);
      split.push(`${id} ${k === 0 ? 0 : 1}`);
      boxes.push(id === 9 ? `${id} 35.0 25.0 20.0 20.0` : `${id} 10.4 5.6 7.2 5.1`);
    }
  }
  await writeText(join(base, 'classes.txt'), `${CLASSES.map((n, i) => `${i + 1} ${n}`).join('\n')}\n`);
  await writeText(join(base, 'images.txt'), `${images.join('\n')}\n`);
  await writeText(join(base, 'image_class_labels.txt'), `${labels.join('\n')}\n`);
  await writeText(join(base, 'train_test_split.txt'), `${split.join('\r\n')}\r\n`); // Windows line ends are fine
  await writeText(join(base, 'bounding_boxes.txt'), `${boxes.join('\n')}\n`);
  return base;
}

let root: string;
let base: string;
beforeEach(async () => {
  root = await tempDir('cub-official');
  base = await writeCubFixture(root);
});
afterEach(() => cleanup(root));

/** Replace line `line` (1-based) of a metadata file. */
async function editLine(file: string, line: number, text: string | null): Promise<void> {
  const lines = (await readFile(join(base, file), 'utf8')).split('\n');
  if (text === null) lines.splice(line - 1, 1);
  else lines[line - 1] = text;
  await writeFile(join(base, file), lines.join('\n'));
}

async function loadError(): Promise<DatasetError> {
  const err = await loadCubOfficial(root).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(DatasetError);
  return err as DatasetError;
}

describe('official CUB layout', () => {
  it('loads classes, splits and boxes from root/CUB_200_2011', async () => {
    const ds = await loadCubOfficial(root);
    expect(ds.layout).toBe('cub-official');
    expect(ds.root).toBe(base);
    expect(ds.classes).toEqual(CLASSES);
    expect(ds.splits.train.map((i) => i.id)).toEqual(['2', '3', '5', '6', '8', '9']);
    expect(ds.splits.test.map((i) => i.id)).toEqual(['1', '4', '7']);
    expect(ds.splits.test.map((i) => i.label)).toEqual([0, 1, 2]);
    expect(ds.splits.train[0].box).toEqual([10.4, 5.6, 7.2, 5.1]);
    expect(ds.splits.train[0].path).toBe(join(base, 'images', '001.Red_Bird', 'Red_Bird_2.png'));
    expect(ds.skipped).toEqual([]);
  });

  it('also loads when pointed at the CUB_200_2011 folder itself, and via loadDataset', async () => {
    expect((await loadCubOfficial(base)).classes).toEqual(CLASSES);
    const ds = await loadDataset(root, { valPerClass: 1, seed: 3 });
    expect(ds.layout).toBe('cub-official');
    expect(ds.splits.val).toHaveLength(3);
    expect(ds.splits.train).toHaveLength(3);
    expect(ds.splits.test.map((i) => i.id)).toEqual(['1', '4', '7']);
  });

  it('crops to the box on decode: float box covers pixels 10..17 x 5..10', async () => {
    const ds = await loadCubOfficial(root);
    const item = ds.splits.train[0]; // id 2, blue channel 79
    const img = await decodeImage(item.path, { box: item.box });
    expect([img.width, img.height]).toEqual([8, 6]);
    expect(pixelAt(img, 0, 0)).toEqual([50, 25, 79]);
    expect(pixelAt(img, 7, 5)).toEqual([85, 50, 79]);
  });

  it('clamps a box that runs past the image edge', async () => {
    const ds = await loadCubOfficial(root);
    const item = ds.splits.train.find((i) => i.id === '9')!;
    const img = await decodeImage(item.path, { box: item.box });
    expect([img.width, img.height]).toEqual([5, 5]);
    expect(pixelAt(img, 0, 0)).toEqual([175, 125, 86]);
    expect(pixelAt(img, 4, 4)).toEqual([195, 145, 86]);
  });

  it('crops then resizes in decodeMany', async () => {
    const ds = await loadCubOfficial(root);
    const { images, skipped } = await decodeMany(ds.splits.train.slice(0, 2), 4);
    expect(skipped).toEqual([]);
    expect(images.map((i) => [i!.width, i!.height])).toEqual([
      [4, 4],
      [4, 4],
    ]);
    const [r, g] = pixelAt(images[0]!, 0, 0);
    expect(r).toBeGreaterThanOrEqual(50);
    expect(r).toBeLessThanOrEqual(60); // the crop's left columns, not the image's (0)
    expect(g).toBeGreaterThanOrEqual(25);
    expect(g).toBeLessThanOrEqual(35);
  });

  it('records a listed image missing on disk as skipped, not fatal', async () => {
    await rm(join(base, 'images', '002.Blue_Bird', 'Blue_Bird_5.png'));
    const ds = await loadCubOfficial(root);
    expect(ds.splits.train.map((i) => i.id)).toEqual(['2', '3', '6', '8', '9']);
    expect(ds.skipped).toHaveLength(1);
    expect(ds.skipped[0].path).toBe(join(base, 'images', '002.Blue_Bird', 'Blue_Bird_5.png'));
    expect(ds.skipped[0].reason).toContain('images.txt line 5');
  });
});

describe('official CUB metadata errors', () => {
  it('a missing metadata file names the file', async () => {
    await rm(join(base, 'bounding_boxes.txt'));
    const err = await loadError();
    expect(err.message).toContain('bounding_boxes.txt');
    expect(err.message).toMatch(/missing/);
    expect(err.file).toBe(join(base, 'bounding_boxes.txt'));
  });

  it('an unknown class id names image_class_labels.txt and the line', async () => {
    await editLine('image_class_labels.txt', 3, '3 9');
    const err = await loadError();
    expect(err.message).toContain('image_class_labels.txt:3');
    expect(err.message).toContain('unknown class id 9');
    expect(err.line).toBe(3);
  });

  it('an empty class names classes.txt and its line', async () => {
    await writeFile(
      join(base, 'classes.txt'),
      [...CLASSES, '004.Ghost_Bird'].map((n, i) => `${i + 1} ${n}`).join('\n'),
    );
    const err = await loadError();
    expect(err.message).toContain('classes.txt:4');
    expect(err.message).toContain('004.Ghost_Bird');
    expect(err.message).toContain('empty');
  });

  it('a malformed line names the file and line', async () => {
    await editLine('images.txt', 2, '2');
    const err = await loadError();
    expect(err.message).toContain('images.txt:2');
    expect(err.message).toContain('expected 2 fields');
  });

  it('a non-numeric box value names bounding_boxes.txt and the line', async () => {
    await editLine('bounding_boxes.txt', 4, '4 1.0 two 3.0 4.0');
    expect((await loadError()).message).toContain('bounding_boxes.txt:4');
  });

  it('an image id absent from train_test_split.txt points at its images.txt line', async () => {
    await editLine('train_test_split.txt', 6, null);
    const err = await loadError();
    expect(err.message).toContain('images.txt:6');
    expect(err.message).toContain('image id 6 has no line in train_test_split.txt');
  });

  it('an image id unknown to images.txt names the file and line', async () => {
    await editLine('bounding_boxes.txt', 10, '10 1 1 5 5');
    const err = await loadError();
    expect(err.message).toContain('bounding_boxes.txt:10');
    expect(err.message).toContain('not listed in images.txt');
  });

  it('a duplicate image id names both lines', async () => {
    await editLine('image_class_labels.txt', 2, '1 1');
    const err = await loadError();
    expect(err.message).toContain('image_class_labels.txt:2');
    expect(err.message).toContain('repeats line 1');
  });

  it('says how to fix it', async () => {
    await editLine('train_test_split.txt', 1, '1 2');
    const err = await loadError();
    expect(err.message).toContain('train_test_split.txt:1');
    expect(err.message).toContain('Fix:');
  });
});

import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DatasetError } from './errors.ts';
import { isDirectory, isFile } from './fs-probe.ts';
import { indexById, parseId, parseNumber, readTable, type TableRow } from './metadata-table.ts';
import type { Dataset } from './types.ts';

/**
 * The folder holding CUB-200-2011 as distributed (images/ + images.txt...): `root`
 * itself or `root/CUB_200_2011`; null if neither looks like it.
 */
export async function findCubOfficialBase(root: string): Promise<string | null> {
  for (const base of [root, join(root, 'CUB_200_2011')]) {
    if ((await isFile(join(base, 'images.txt'))) && (await isDirectory(join(base, 'images')))) return base;
  }
  return null;
}

/**
 * Load the official CUB-200-2011 layout. Items carry their bounding box so decoding
 * crops on the fly (the paper's "cropped" setting) without writing crops to disk.
 * Any inconsistency in the metadata is a DatasetError naming file and line; an image
 * listed but absent on disk is only recorded in `skipped`.
 */
export async function loadCubOfficial(root: string): Promise<Dataset> {
  const base = await findCubOfficialBase(root);
  if (base === null) {
    throw new DatasetError('not a CUB-200-2011 folder (no images.txt next to an images/ folder)', {
      file: root,
      fix: 'point at the extracted CUB_200_2011 folder',
    });
  }
  const file = (name: string) => join(base, name);
  const [classRows, imageRows, labelRows, splitRows, boxRows] = await Promise.all([
    readTable(file('classes.txt'), 2, true),
    readTable(file('images.txt'), 2, true),
    readTable(file('image_class_labels.txt'), 2),
    readTable(file('train_test_split.txt'), 2),
    readTable(file('bounding_boxes.txt'), 5),
  ]);

  // Classes in id order; the label is the position in that order.
  const classById = indexById(file('classes.txt'), classRows, 'class id');
  const classIds = [...classById.keys()].sort((a, b) => a - b);
  const labelOfClass = new Map(classIds.map((id, i) => [id, i]));
  const classes = classIds.map((id) => classById.get(id)!.fields[1]);

  const images = indexById(file('images.txt'), imageRows, 'image id');
  const labels = keyedToImages(file('image_class_labels.txt'), labelRows, images);
  const isTrain = keyedToImages(file('train_test_split.txt'), splitRows, images);
  const boxes = keyedToImages(file('bounding_boxes.txt'), boxRows, images);

  const present = await listPresentFiles(
    join(base, 'images'),
    [...images.values()].map((r) => r.fields[1]),
  );
  const ds: Dataset = {
    layout: 'cub-official',
    root: base,
    classes,
    splits: { train: [], val: [], test: [], metrics: [] },
    skipped: [],
  };
  const listed = new Array<number>(classes.length).fill(0);
  const onDisk = new Array<number>(classes.length).fill(0);
  for (const [id, imageRow] of images) {
    const lookup = (m: Map<number, TableRow>, name: string): TableRow => {
      const row = m.get(id);
      if (!row) {
        throw new DatasetError(`image id ${id} has no line in ${name}`, {
          file: file('images.txt'),
          line: imageRow.line,
          fix: `add "${id} ..." to ${name} or remove image ${id} from images.txt`,
        });
      }
      return row;
    };
    const labelRow = lookup(labels, 'image_class_labels.txt');
    const classId = parseId(file('image_class_labels.txt'), labelRow, 1, 'class id');
    const label = labelOfClass.get(classId);
    if (label === undefined) {
      throw new DatasetError(`unknown class id ${classId} (not in classes.txt)`, {
        file: file('image_class_labels.txt'),
        line: labelRow.line,
        fix: 'use a class id listed in classes.txt',
      });
    }
    const splitRow = lookup(isTrain, 'train_test_split.txt');
    const flag = splitRow.fields[1];
    if (flag !== '0' && flag !== '1') {
      throw new DatasetError(`is_training_image must be 0 or 1, found "${flag}"`, {
        file: file('train_test_split.txt'),
        line: splitRow.line,
        fix: 'write 1 for training images and 0 for test images',
      });
    }
    const boxRow = lookup(boxes, 'bounding_boxes.txt');
    const [x, y, w, h] = [1, 2, 3, 4].map((c) => parseNumber(file('bounding_boxes.txt'), boxRow, c, 'box coordinate'));
    const box: [number, number, number, number] = [x, y, w, h];
    if (box[2] <= 0 || box[3] <= 0) {
      throw new DatasetError(`box width and height must be positive, found ${box[2]} x ${box[3]}`, {
        file: file('bounding_boxes.txt'),
        line: boxRow.line,
        fix: 'write the box as "<image id> <x> <y> <width> <height>"',
      });
    }
    listed[label]++;
    const rel = imageRow.fields[1];
    const path = join(base, 'images', rel);
    if (!present.has(rel)) {
      ds.skipped.push({ path, reason: `listed in images.txt line ${imageRow.line} but missing on disk` });
      continue;
    }
    ds.splits[flag === '1' ? 'train' : 'test'].push({ id: String(id), path, label, box });
    onDisk[label]++;
  }
  listed.forEach((n, label) => {
    if (onDisk[label] > 0) return;
    const problem =
      n === 0 ? 'no image of image_class_labels.txt belongs to it' : `all ${n} of its images are missing on disk`;
    throw new DatasetError(`class "${classes[label]}" is empty: ${problem}`, {
      file: file('classes.txt'),
      line: classById.get(classIds[label])!.line,
      fix: 'restore its images (files under images/ and their metadata lines) or remove the class from classes.txt',
    });
  });
  return ds;
}

/** Rows of a per-image file, by image id; ids unknown to images.txt are errors. */
function keyedToImages(path: string, rows: TableRow[], images: Map<number, TableRow>): Map<number, TableRow> {
  const byId = indexById(path, rows, 'image id');
  for (const [id, row] of byId) {
    if (!images.has(id)) {
      throw new DatasetError(`image id ${id} is not listed in images.txt`, {
        file: path,
        line: row.line,
        fix: 'delete the line or add the image to images.txt',
      });
    }
  }
  return byId;
}

/** Which of the relative paths exist, reading each folder once instead of stat-ing 11,788 files. */
async function listPresentFiles(imagesDir: string, rels: string[]): Promise<Set<string>> {
  const present = new Set<string>();
  const dirs = [...new Set(rels.map((r) => dirname(r)))];
  await Promise.all(
    dirs.map(async (d) => {
      let names: string[] = [];
      try {
        names = await readdir(join(imagesDir, d));
      } catch {
        return; // a missing class folder: every image in it is reported as skipped
      }
      for (const n of names) present.add(d === '.' ? n : `${d}/${n}`);
    }),
  );
  return present;
}

import { join } from 'node:path';
import { DatasetError } from './errors.ts';
import { isFile } from './fs-probe.ts';
import { indexById, parseId, parseNumber, readTable, type TableRow } from './metadata-table.ts';
import type { DatasetItem } from './types.ts';

/** One visible part of one image, in pixels of the image the model sees before resizing (the bird crop). */
export interface PartPoint {
  /** Index into PartAnnotations.names (CUB part id - 1). */
  part: number;
  x: number;
  y: number;
}

export interface PartAnnotations {
  /** Part names in id order (CUB: back, beak, ... throat; 15). */
  names: string[];
  /** Aligned with the items given: their visible parts, or null when an item has no annotation. */
  perItem: (PartPoint[] | null)[];
  /** The folder holding parts/ (for messages). */
  source: string;
}

/**
 * CUB's part annotations (parts/parts.txt, parts/part_locs.txt) for dataset items.
 * The official layout keeps parts/ next to images.txt; the pre-cropped layout under
 * meta/. Items map to CUB image ids through their id (both CUB loaders use the CUB
 * id when they know it); items with another kind of id get null. Part locations are
 * in uncropped pixels, so the crop's top-left corner is subtracted: the item's own
 * box when it has one (official layout, cropped on decode), else bounding_boxes.txt
 * next to parts/ (pre-cropped layout). The corner is floored, as both our decoder
 * and the crops on disk cut at whole pixels. Invisible parts are left out.
 * Returns null when neither part file exists.
 */
export async function loadCubParts(datasetRoot: string, items: DatasetItem[]): Promise<PartAnnotations | null> {
  const base = await findPartsBase(datasetRoot);
  if (base === null) return null;
  const namesFile = join(base, 'parts', 'parts.txt');
  const locsFile = join(base, 'parts', 'part_locs.txt');
  const names = await readPartNames(namesFile);
  const locs = await readPartLocations(locsFile, names.length);

  const cubIds = items.map((it) => (/^\d+$/.test(it.id) ? Number(it.id) : null));
  const needBoxes = items.some((it, i) => it.box === undefined && cubIds[i] !== null && locs.has(cubIds[i]!));
  const corners = needBoxes
    ? await readBoxCorners(join(base, 'bounding_boxes.txt'))
    : new Map<number, [number, number]>();

  const perItem = items.map((item, i): PartPoint[] | null => {
    const id = cubIds[i];
    const points = id === null ? undefined : locs.get(id);
    if (id === null || points === undefined) return null;
    const corner = item.box ? cornerOf(item.box[0], item.box[1]) : corners.get(id);
    if (corner === undefined) {
      throw new DatasetError(
        `image id ${id} has part locations but no bounding box, so its parts cannot be placed on the cropped image`,
        {
          file: join(base, 'bounding_boxes.txt'),
          fix: `add "${id} <x> <y> <width> <height>" for it`,
        },
      );
    }
    return points.map((p) => ({ part: p.part, x: p.x - corner[0], y: p.y - corner[1] }));
  });
  return { names, perItem, source: base };
}

/** The folder with parts/ inside: the root, its CUB_200_2011/ (official) or its meta/ (pre-cropped). */
async function findPartsBase(root: string): Promise<string | null> {
  for (const base of [root, join(root, 'CUB_200_2011'), join(root, 'meta')]) {
    const either =
      (await isFile(join(base, 'parts', 'parts.txt'))) || (await isFile(join(base, 'parts', 'part_locs.txt')));
    // With only one of the two present, readTable below reports the missing one.
    if (either) return base;
  }
  return null;
}

/** Names by position; ids must be 1..P so that part id - 1 indexes them. */
async function readPartNames(file: string): Promise<string[]> {
  const rows = await readTable(file, 2, true);
  const byId = indexById(file, rows, 'part id');
  const names: string[] = [];
  for (let id = 1; id <= byId.size; id++) {
    const row = byId.get(id);
    if (!row) {
      const [, bad] = [...byId.entries()].find(([k]) => k > byId.size)!;
      throw new DatasetError(`part ids must run 1..${byId.size} without gaps, found ${bad.fields[0]}`, {
        file,
        line: bad.line,
        fix: 'number the parts 1, 2, 3, ...',
      });
    }
    names.push(row.fields[1]);
  }
  if (names.length === 0)
    throw new DatasetError('no parts listed', { file, fix: 'restore parts.txt from the CUB-200-2011 archive' });
  return names;
}

/** Visible part locations by CUB image id, in uncropped pixels. Every image with any line gets an entry. */
async function readPartLocations(file: string, numParts: number): Promise<Map<number, PartPoint[]>> {
  const rows = await readTable(file, 5);
  const out = new Map<number, PartPoint[]>();
  const seen = new Map<string, number>();
  for (const row of rows) {
    const imageId = parseId(file, row, 0, 'image id');
    const partId = parseId(file, row, 1, 'part id');
    if (partId > numParts) {
      throw new DatasetError(`part id ${partId} is not in parts.txt (which lists ${numParts})`, {
        file,
        line: row.line,
        fix: 'use a part id listed in parts.txt',
      });
    }
    const key = `${imageId}:${partId}`;
    const prev = seen.get(key);
    if (prev !== undefined) {
      throw new DatasetError(`image ${imageId} part ${partId} repeats line ${prev}`, {
        file,
        line: row.line,
        fix: 'delete the duplicate line',
      });
    }
    seen.set(key, row.line);
    const visible = visibility(file, row);
    const x = parseNumber(file, row, 2, 'x');
    const y = parseNumber(file, row, 3, 'y');
    let points = out.get(imageId);
    if (!points) out.set(imageId, (points = []));
    if (visible) points.push({ part: partId - 1, x, y });
  }
  return out;
}

function visibility(file: string, row: TableRow): boolean {
  const v = row.fields[4];
  if (v !== '0' && v !== '1') {
    throw new DatasetError(`visible must be 0 or 1, found "${v}"`, {
      file,
      line: row.line,
      fix: 'write "<image id> <part id> <x> <y> <0|1>"',
    });
  }
  return v === '1';
}

/** Crop corner of every image from bounding_boxes.txt (x y w h, uncropped pixels). */
async function readBoxCorners(file: string): Promise<Map<number, [number, number]>> {
  const rows = indexById(file, await readTable(file, 5), 'image id');
  const out = new Map<number, [number, number]>();
  for (const [id, row] of rows)
    out.set(id, cornerOf(parseNumber(file, row, 1, 'box x'), parseNumber(file, row, 2, 'box y')));
  return out;
}

/** Whole-pixel top-left of a crop, as decodeImage's clamp and the pre-cropped files cut it. */
function cornerOf(x: number, y: number): [number, number] {
  return [Math.max(0, Math.floor(x)), Math.max(0, Math.floor(y))];
}

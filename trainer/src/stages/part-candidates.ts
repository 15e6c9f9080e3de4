/**
 * Push candidates near annotated parts (push.partRadius): a training patch may become a prototype
 * only when its centre, on the model input, lies within `radius` pixels (in x and in y) of one of its
 * image's visible annotated parts. Prototypes pushed onto patches away from every part land on no part
 * on most of their class's other images (docs/cub-preset.md), so push skips those patches. The
 * restriction is returned as what push already takes: item -> patches no prototype may take.
 */
import { join } from 'node:path';
import { loadCubParts, type PartPoint } from '../data/cub-parts.ts';
import { DatasetError } from '../data/errors.ts';
import { ImageCache } from '../data/image-cache.ts';
import type { DatasetItem } from '../data/types.ts';

export interface PartCandidateGeometry {
  /** Feature grid. */
  height: number;
  width: number;
  /** Side of the square model input the image is stretched to. */
  inputSize: number;
  /** Largest distance, in input pixels along each axis, from a patch's centre to a part. */
  radius: number;
}

/**
 * Distance, in input pixels, from the centre of grid cell (row, col) to the nearest of the image's parts,
 * along the axis where it is larger (Chebyshev); Infinity without parts. `size`: the image the points are
 * given in (the crop, before resizing).
 */
export function nearestPartDistance(
  points: readonly PartPoint[],
  size: { width: number; height: number },
  g: Omit<PartCandidateGeometry, 'radius'>,
  row: number,
  col: number,
): number {
  const cy = ((row + 0.5) * g.inputSize) / g.height;
  const cx = ((col + 0.5) * g.inputSize) / g.width;
  let best = Infinity;
  for (const p of points) {
    const dx = Math.abs((g.inputSize * p.x) / size.width - cx);
    const dy = Math.abs((g.inputSize * p.y) / size.height - cy);
    best = Math.min(best, Math.max(dx, dy));
  }
  return best;
}

/**
 * Patches of each item that lie farther than the radius from every visible part of it; an item
 * without annotations (null) or without visible parts offers no patch.
 */
export function offPartPatches(
  perItem: readonly (readonly PartPoint[] | null)[],
  sizes: readonly { width: number; height: number }[],
  g: PartCandidateGeometry,
): Map<number, Set<number>> {
  if (sizes.length !== perItem.length)
    throw new Error(`offPartPatches: ${perItem.length} part lists but ${sizes.length} image sizes`);
  if (!(g.radius >= 0)) throw new Error(`offPartPatches: radius must be >= 0, got ${g.radius}`);
  const out = new Map<number, Set<number>>();
  perItem.forEach((points, item) => {
    const banned = new Set<number>();
    for (let r = 0; r < g.height; r++)
      for (let c = 0; c < g.width; c++)
        if (!(nearestPartDistance(points ?? [], sizes[item], g, r, c) <= g.radius)) banned.add(r * g.width + c);
    if (banned.size) out.set(item, banned);
  });
  return out;
}

/** Both exclusions together (a patch banned by either stays banned). */
export function mergeExclusions(
  a: ReadonlyMap<number, ReadonlySet<number>>,
  b: ReadonlyMap<number, ReadonlySet<number>>,
): Map<number, Set<number>> {
  const out = new Map<number, Set<number>>();
  for (const m of [a, b]) for (const [item, set] of m) out.set(item, new Set([...(out.get(item) ?? []), ...set]));
  return out;
}

/** What the push of a run needs to know about its candidates. */
export interface PartCandidates {
  exclude: Map<number, Set<number>>;
  /** Items with at least one candidate patch, and candidate patches over all items. */
  itemsWithCandidates: number;
  candidatePatches: number;
}

/**
 * The CUB part annotations of training items and the items' image sizes (the crops the points are given
 * in). No annotation at all is an error that names the file `what` needs, with `orFix` as the way out.
 */
export async function loadPartPlacements(
  root: string,
  items: DatasetItem[],
  what: string,
  orFix: string,
): Promise<{ perItem: (PartPoint[] | null)[]; sizes: { width: number; height: number }[] }> {
  const parts = await loadCubParts(root, items);
  if (!parts?.perItem.some((p) => p !== null))
    throw new DatasetError(`${what} needs CUB part annotations for the training images, and there are none`, {
      file: parts?.source ? join(parts.source, 'parts', 'part_locs.txt') : join(root, 'parts', 'part_locs.txt'),
      fix: `use a CUB-200-2011 copy with parts/parts.txt and parts/part_locs.txt, or ${orFix}`,
    });
  const cache = new ImageCache(0);
  const sizes: { width: number; height: number }[] = [];
  // Sizes only read image headers (crops of the official layout decode); a few at a time keeps files closed.
  for (let s = 0; s < items.length; s += 32)
    sizes.push(...(await Promise.all(items.slice(s, s + 32).map((it) => cache.size(it)))));
  return { perItem: parts.perItem, sizes };
}

/**
 * The off-part patches of a dataset's training items (aligned with the push source), from its CUB part
 * annotations. A dataset without them is an error that names the file push.partRadius needs.
 */
export async function loadPartCandidates(
  root: string,
  items: DatasetItem[],
  g: PartCandidateGeometry,
): Promise<PartCandidates> {
  const { perItem, sizes } = await loadPartPlacements(root, items, 'push.partRadius', 'set push.partRadius to null');
  const exclude = offPartPatches(perItem, sizes, g);
  const HW = g.height * g.width;
  let itemsWithCandidates = 0;
  let candidatePatches = 0;
  items.forEach((_, i) => {
    const free = HW - (exclude.get(i)?.size ?? 0);
    if (free > 0) itemsWithCandidates++;
    candidatePatches += free;
  });
  return { exclude, itemsWithCandidates, candidatePatches };
}

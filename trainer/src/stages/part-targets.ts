/**
 * Targets of the part localisation term (loss.partLocalisation, not in the paper): each prototype tied to
 * a pushed patch takes the annotated part nearest that patch as its part, and on every training image of
 * its class where that part is visible, the patches around the part are where it should match best.
 * Consistency (Huang et al.) asks exactly that of a prototype on held-out images; the training images'
 * annotations teach it, as forbidding the background does (docs/cub-results.md).
 *
 * Part points are in pixels of the crop; the model sees the crop stretched to a square input, the
 * mirrored copy of it (cached flips), where a point at x lies at inputSize - x, or, while a backbone
 * trains on augmented images, each image's random view, which moves its points with it.
 */
import type { PointMap } from '../data/augment.ts';
import type { PartPoint } from '../data/cub-parts.ts';
import { loadPartPlacements, nearestPartDistance, type PartCandidateGeometry } from './part-candidates.ts';
import type { PushRecord } from './push.ts';
import type { DatasetItem } from '../data/types.ts';

export type PartGeometry = Omit<PartCandidateGeometry, 'radius'>;

/** Where each training item's visible parts lie on the model input, and which part each prototype targets. */
export interface PartTargets {
  geometry: PartGeometry;
  /** Patch centres within this many input pixels (each axis) of a part are on it. */
  radius: number;
  /** Per training item (push-source order): its visible parts in input pixels, or null without annotations. */
  points: (readonly { part: number; x: number; y: number }[] | null)[];
  /** Per prototype: the part it targets, or -1 (no visible part within the radius of its pushed patch). */
  target: Int32Array;
  /** Each class's prototype indices (perClass per class), in the order of the batch masks. */
  groups: { indices: Int32Array; perClass: number };
}

/** Crop-pixel points of each item moved onto the square model input. */
export function pointsOnInput(
  perItem: readonly (readonly PartPoint[] | null)[],
  sizes: readonly { width: number; height: number }[],
  inputSize: number,
): (readonly { part: number; x: number; y: number }[] | null)[] {
  return perItem.map((points, i) =>
    points === null
      ? null
      : points.map((p) => ({
          part: p.part,
          x: (inputSize * p.x) / sizes[i].width,
          y: (inputSize * p.y) / sizes[i].height,
        })),
  );
}

/**
 * For each prototype, the visible part of its push image nearest the centre of its pushed patch when it
 * lies within `radius` (Chebyshev, input pixels); -1 otherwise, and for prototypes push gave no image.
 */
export function prototypeTargetParts(
  push: readonly PushRecord[],
  points: PartTargets['points'],
  g: PartGeometry,
  radius: number,
): Int32Array {
  const target = new Int32Array(push.length).fill(-1);
  for (const r of push) {
    const pts = r.item >= 0 ? points[r.item] : null;
    if (!pts) continue;
    const cy = ((r.row + 0.5) * g.inputSize) / g.height;
    const cx = ((r.col + 0.5) * g.inputSize) / g.width;
    let best = Infinity;
    for (const p of pts) {
      const d = Math.max(Math.abs(p.x - cx), Math.abs(p.y - cy));
      if (d < best) [best, target[r.prototype]] = [d, p.part];
    }
    if (!(best <= radius)) target[r.prototype] = -1;
  }
  return target;
}

/**
 * The batch's target masks [n, perClass, H·W] (1: a patch on the prototype's part in this view), for
 * each item's own-class prototypes in `groups` order. A row of zeros (no target, the part hidden or
 * cropped out, or no annotations) adds nothing to the term. `views[b]`, when given, moves item b's
 * points onto its augmented view (mirroring included); otherwise `flipped[b]` mirrors them.
 */
export function partTargetMasks(
  t: PartTargets,
  indices: readonly number[],
  flipped: readonly boolean[],
  labels: Int32Array,
  views?: readonly (PointMap | null)[],
): Uint8Array {
  const { height: h, width: w, inputSize } = t.geometry;
  const hw = h * w;
  const k = t.groups.perClass;
  const out = new Uint8Array(indices.length * k * hw);
  indices.forEach((item, b) => {
    const pts = t.points[item];
    if (!pts) return;
    for (let g = 0; g < k; g++) {
      const part = t.target[t.groups.indices[labels[b] * k + g]];
      const p = part < 0 ? undefined : pts.find((q) => q.part === part);
      if (!p) continue;
      const view = views?.[b];
      const at: [number, number] | null = view ? view(p.x, p.y) : [flipped[b] ? inputSize - p.x : p.x, p.y];
      if (!at) continue;
      const [x, y] = at;
      const row = (b * k + g) * hw;
      for (let r = 0; r < h; r++)
        for (let c = 0; c < w; c++)
          if (
            nearestPartDistance([{ part, x, y }], { width: inputSize, height: inputSize }, t.geometry, r, c) <= t.radius
          )
            out[row + r * w + c] = 1;
    }
  });
  return out;
}

/** The targets of a run's push, from the dataset's CUB part annotations (an error names the missing file). */
export async function loadPartTargets(
  root: string,
  items: DatasetItem[],
  push: readonly PushRecord[],
  g: PartGeometry,
  radius: number,
  groups: PartTargets['groups'],
): Promise<PartTargets> {
  const placed = await loadPartPlacements(root, items, 'loss.partLocalisation', 'set loss.partLocalisation to 0');
  const points = pointsOnInput(placed.perItem, placed.sizes, g.inputSize);
  return { geometry: g, radius, points, target: prototypeTargetParts(push, points, g, radius), groups };
}

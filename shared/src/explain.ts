import { percentileBox, upsampleBicubic, type Box } from './geometry.ts';
import { logSimilarity, SIMILARITY_EPSILON } from './similarity.ts';

/**
 * Squared distances of every patch to every prototype for one image.
 * 'patch-major': data[p * m + j] (the trainer's layout); 'prototype-major':
 * data[j * H * W + p] (one H x W map per prototype, as the ONNX export emits).
 */
export interface DistanceMaps {
  data: ArrayLike<number>;
  prototypes: number;
  height: number;
  width: number;
  layout: 'patch-major' | 'prototype-major';
}

/** What explanation needs of a model: the last layer and which prototypes are live. */
export interface ExplainModel {
  /** Last-layer weights, row-major [prototypes x classes]. */
  lastLayer: ArrayLike<number>;
  numClasses: number;
  /** Pruned prototypes contribute nothing and are never shown as evidence. */
  pruned?: ArrayLike<boolean>;
  epsilon?: number;
}

export interface Evidence {
  prototype: number;
  /** log((d+1)/(d+eps)) at the best patch. */
  similarity: number;
  /** Last-layer weight from this prototype to the class. */
  weight: number;
  /** Points contributed: similarity x weight. */
  contribution: number;
  /** Feature-grid cell of the best patch. */
  patch: { row: number; col: number };
  /** Where the prototype activates most, in the input image's own pixels (95th-percentile box). */
  box: Box;
}

export interface ClassExplanation {
  classId: number;
  logit: number;
  probability: number;
  /** Prototypes ranked by points contributed to this class (highest first). */
  evidence: Evidence[];
}

export interface Explanation {
  logits: Float64Array;
  probabilities: Float64Array;
  similarities: Float64Array;
  predictions: ClassExplanation[];
}

/** Accessor for d(patch p, prototype j) under either layout. */
function distanceAt(d: DistanceMaps): (p: number, j: number) => number {
  const hw = d.height * d.width;
  return d.layout === 'patch-major' ? (p, j) => d.data[p * d.prototypes + j] : (p, j) => d.data[j * hw + p];
}

function checkMaps(d: DistanceMaps): void {
  const expected = d.prototypes * d.height * d.width;
  if (d.data.length !== expected) {
    throw new Error(
      `distance maps hold ${d.data.length} values, expected ${d.prototypes} prototypes x ${d.height}x${d.width} = ${expected}`,
    );
  }
}

/** Min distance and its patch per prototype, and the similarity there. */
export function bestPatches(
  d: DistanceMaps,
  eps = SIMILARITY_EPSILON,
): { distance: Float64Array; patch: Int32Array; similarity: Float64Array } {
  checkMaps(d);
  const hw = d.height * d.width;
  const m = d.prototypes;
  const distance = new Float64Array(m).fill(Infinity);
  const patch = new Int32Array(m);
  if (d.layout === 'prototype-major') {
    // One contiguous map per prototype: scan it with the running minimum in a local.
    const data = d.data;
    for (let j = 0; j < m; j++) {
      let best = Infinity;
      let at = 0;
      const base = j * hw;
      for (let p = 0; p < hw; p++) {
        const v = data[base + p];
        if (v < best) {
          best = v;
          at = p;
        }
      }
      distance[j] = best;
      patch[j] = at;
    }
  } else {
    const at = distanceAt(d);
    for (let j = 0; j < m; j++) {
      for (let p = 0; p < hw; p++) {
        const v = at(p, j);
        if (v < distance[j]) {
          distance[j] = v;
          patch[j] = p;
        }
      }
    }
  }
  const similarity = distance.map((v) => logSimilarity(v, eps));
  return { distance, patch, similarity };
}

/** Class logits from similarities: logit[c] = sum_j sim[j] * W[j, c], pruned prototypes excluded. */
export function logitsFromSimilarities(similarities: ArrayLike<number>, model: ExplainModel): Float64Array {
  const m = similarities.length;
  const C = model.numClasses;
  if (model.lastLayer.length !== m * C)
    throw new Error(`last layer has ${model.lastLayer.length} weights, expected ${m} prototypes x ${C} classes`);
  const logits = new Float64Array(C);
  for (let j = 0; j < m; j++) {
    if (model.pruned?.[j]) continue;
    const s = similarities[j];
    for (let c = 0; c < C; c++) logits[c] += s * model.lastLayer[j * C + c];
  }
  return logits;
}

export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const out = Float64Array.from(logits as ArrayLike<number>, (v) => Math.exp(v - max));
  const sum = out.reduce((a, b) => a + b, 0);
  return out.map((v) => v / sum);
}

/** Points contributed by every prototype to class c (0 for pruned ones). */
export function contributions(similarities: ArrayLike<number>, model: ExplainModel, classId: number): Float64Array {
  const C = model.numClasses;
  const out = new Float64Array(similarities.length);
  for (let j = 0; j < out.length; j++)
    out[j] = model.pruned?.[j] ? 0 : similarities[j] * model.lastLayer[j * C + classId];
  return out;
}

/**
 * The k unpruned prototypes contributing most, highest first, ties by index:
 * the head of sorting them all by (contribution descending, index ascending).
 */
function topContributors(contrib: Float64Array, pruned: ArrayLike<boolean> | undefined, k: number): number[] {
  const top: number[] = [];
  if (k <= 0) return top;
  for (let j = 0; j < contrib.length; j++) {
    if (pruned?.[j]) continue;
    const v = contrib[j];
    // Indices come in ascending order, so j goes after every kept one of equal contribution.
    if (top.length === k && !(v > contrib[top[k - 1]])) continue;
    let i = top.length === k ? k - 1 : top.length;
    while (i > 0 && v > contrib[top[i - 1]]) {
      top[i] = top[i - 1];
      i--;
    }
    top[i] = j;
  }
  return top;
}

/** Prototype j's similarity map (H x W, row-major) from its distance map. */
export function activationMap(d: DistanceMaps, j: number, eps = SIMILARITY_EPSILON): Float32Array {
  checkMaps(d);
  const at = distanceAt(d);
  const hw = d.height * d.width;
  return Float32Array.from({ length: hw }, (_, p) => logSimilarity(at(p, j), eps));
}

/** One prototype's H x W distance map (e.g. stored per prototype) as DistanceMaps, prototype 0. */
export function singleMap(map: ArrayLike<number>, height: number, width: number): DistanceMaps {
  return { data: map, prototypes: 1, height, width, layout: 'prototype-major' };
}

/** Largest side at which activation maps are upsampled for boxes; boxes are then scaled to the image. */
export const BOX_RESOLUTION = 512;

/**
 * The box side of served explanations (the edge API and the widget's local mode,
 * so both give the same boxes). A box comes from a 7x7-ish map upsampled; at
 * 500 px that upsampling and its percentile cost ~5 ms a box, at 160 px a tenth
 * of it, and the box moves by at most a few pixels.
 */
export const SERVED_BOX_SIDE = 160;

/**
 * Where prototype j activates in an image of imageW x imageH: its similarity
 * map upsampled bicubically, then the smallest box covering the top 5%.
 */
export function activationBox(
  d: DistanceMaps,
  j: number,
  imageW: number,
  imageH: number,
  opts: { percentile?: number; eps?: number; maxSide?: number } = {},
): Box {
  const scale = Math.min(1, (opts.maxSide ?? BOX_RESOLUTION) / Math.max(imageW, imageH));
  const w = Math.max(1, Math.round(imageW * scale));
  const h = Math.max(1, Math.round(imageH * scale));
  const up = upsampleBicubic(activationMap(d, j, opts.eps), d.height, d.width, h, w);
  const b = percentileBox(up, w, h, opts.percentile ?? 95);
  if (scale === 1) return b;
  const sx = imageW / w;
  const sy = imageH / h;
  const x = Math.floor(b.x * sx);
  const y = Math.floor(b.y * sy);
  return {
    x,
    y,
    w: Math.min(imageW, Math.ceil((b.x + b.w) * sx)) - x,
    h: Math.min(imageH, Math.ceil((b.y + b.h) * sy)) - y,
  };
}

/**
 * The whole local explanation of one image: top classes with probabilities,
 * and for each the prototypes that contributed most, with where they matched.
 * The same function runs in the trainer, the edge and the widget.
 */
export function explain(
  d: DistanceMaps,
  model: ExplainModel,
  image: { width: number; height: number },
  opts: {
    top?: number;
    evidence?: number /** Longest side at which boxes are found (default BOX_RESOLUTION). */;
    boxMaxSide?: number;
  } = {},
): Explanation {
  const eps = model.epsilon ?? SIMILARITY_EPSILON;
  const best = bestPatches(d, eps);
  const logits = logitsFromSimilarities(best.similarity, model);
  const probabilities = softmax(logits);
  const top = Math.max(1, Math.min(opts.top ?? 3, model.numClasses));
  const perClass = Math.max(0, opts.evidence ?? 3);
  const order = Array.from(logits.keys())
    .sort((a, b) => logits[b] - logits[a] || a - b)
    .slice(0, top);
  const boxCache = new Map<number, Box>();
  const predictions = order.map((classId): ClassExplanation => {
    const contrib = contributions(best.similarity, model, classId);
    const ranked = topContributors(contrib, model.pruned, perClass);
    return {
      classId,
      logit: logits[classId],
      probability: probabilities[classId],
      evidence: ranked.map((j) => {
        let box = boxCache.get(j);
        if (!box)
          boxCache.set(j, (box = activationBox(d, j, image.width, image.height, { eps, maxSide: opts.boxMaxSide })));
        return {
          prototype: j,
          similarity: best.similarity[j],
          weight: model.lastLayer[j * model.numClasses + classId],
          contribution: contrib[j],
          patch: { row: Math.floor(best.patch[j] / d.width), col: best.patch[j] % d.width },
          box,
        };
      }),
    };
  });
  return { logits, probabilities, similarities: best.similarity, predictions };
}

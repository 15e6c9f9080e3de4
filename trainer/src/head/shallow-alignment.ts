/**
 * Shallow–deep feature alignment (Huang et al., ICCV 2023, "SDFA"): at the patch where each of an image's
 * own-class prototypes matches best, the backbone's deep features should relate to the image's other patches
 * as its shallow features do. Deep patches see most of the image, so without it a prototype's best patch can
 * drift to wherever the context is; shallow features only see their cell, which ties the match to a place.
 *
 * The cost, for image b, own-class prototype k at its nearest patch p and every patch q:
 *   mean over (b, k, q) of relu(|cos(deep_p, deep_q) − cos(shallow_p, shallow_q)| − margin)
 * Shallow maps are finer than the deep grid; each grid cell's shallow vector is the cell's block of shallow
 * positions laid side by side (space to depth). The shallow side and the patch choice carry no gradient.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * For each image and each prototype of its class, the patch (0..hw−1) nearest that prototype.
 * `z` [B·hw, dim] patch embeddings (image-major); `prototypes` [m, dim]; `groups` [C, perClass] the
 * prototype indices of each class. Returns [B·perClass], image-major.
 */
export function nearestOwnPatches(
  z: Float32Array,
  prototypes: Float32Array,
  dim: number,
  hw: number,
  labels: Int32Array,
  groups: { indices: Int32Array; perClass: number },
): Int32Array {
  const k = groups.perClass;
  const out = new Int32Array(labels.length * k);
  labels.forEach((label, b) => {
    for (let g = 0; g < k; g++) {
      const j = groups.indices[label * k + g];
      let best = Infinity;
      let at = 0;
      for (let p = 0; p < hw; p++) {
        let d = 0;
        const zo = (b * hw + p) * dim;
        const po = j * dim;
        for (let c = 0; c < dim; c++) {
          const e = z[zo + c] - prototypes[po + c];
          d += e * e;
        }
        if (d < best) [best, at] = [d, p];
      }
      out[b * k + g] = at;
    }
  });
  return out;
}

/**
 * Cosine similarity of each chosen patch to every patch of its image, on shallow maps folded onto the deep
 * grid. `shallow` [B, hs, ws, cs] (NHWC); `grid` [h, w] divides [hs, ws] evenly; `positions` [B·k].
 * Returns [B·k·h·w].
 */
export function shallowSimilarityRows(
  shallow: Float32Array,
  shape: [number, number, number, number],
  grid: [number, number],
  positions: Int32Array,
): Float32Array {
  const [b, hs, ws, cs] = shape;
  const [h, w] = grid;
  if (hs % h || ws % w)
    throw new Error(`shallow alignment: the shallow map (${hs}×${ws}) is not a whole multiple of the grid (${h}×${w})`);
  const [fy, fx] = [hs / h, ws / w];
  const hw = h * w;
  const k = positions.length / b;
  const len = fy * fx * cs;
  // Each image's folded cells, unit length (a zero cell stays zero: it is like nothing).
  const cells = new Float32Array(hw * len);
  const out = new Float32Array(b * k * hw);
  for (let i = 0; i < b; i++) {
    for (let cy = 0; cy < h; cy++)
      for (let cx = 0; cx < w; cx++) {
        const base = (cy * w + cx) * len;
        let o = base;
        for (let dy = 0; dy < fy; dy++)
          for (let dx = 0; dx < fx; dx++) {
            const src = ((i * hs + cy * fy + dy) * ws + cx * fx + dx) * cs;
            for (let c = 0; c < cs; c++) cells[o++] = shallow[src + c];
          }
        let n = 0;
        for (let c = base; c < base + len; c++) n += cells[c] * cells[c];
        const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
        for (let c = base; c < base + len; c++) cells[c] *= inv;
      }
    for (let g = 0; g < k; g++) {
      const p = positions[i * k + g] * len;
      const row = (i * k + g) * hw;
      for (let q = 0; q < hw; q++) {
        let s = 0;
        const qo = q * len;
        for (let c = 0; c < len; c++) s += cells[p + c] * cells[qo + c];
        out[row + q] = s;
      }
    }
  }
  return out;
}

/**
 * The alignment cost on deep maps [B, h, w, C] (differentiable), given each image's chosen patches
 * `positions` [B·k] and the shallow similarity rows [B·k·h·w] (constants).
 */
export function shallowAlignmentCost(
  deep: tf.Tensor4D,
  positions: Int32Array,
  shallowRows: Float32Array,
  margin: number,
): tf.Scalar {
  return tf.tidy(() => {
    const [b, h, w, c] = deep.shape;
    const hw = h * w;
    const k = positions.length / b;
    const f = tf.reshape(deep, [b, hw, c]);
    const unit = tf.div(f, tf.sqrt(tf.add(tf.sum(tf.square(f), -1, true), 1e-12)));
    // Rows picked by a one-hot product rather than a gather: its gradient is a matmul on every backend.
    const pick = new Float32Array(b * k * hw);
    positions.forEach((p, r) => (pick[r * hw + p] = 1));
    const rows = tf.matMul(tf.tensor3d(pick, [b, k, hw]), unit);
    const deepRows = tf.matMul(rows, unit, false, true);
    const gap = tf.abs(tf.sub(deepRows, tf.tensor3d(shallowRows, [b, k, hw])));
    return tf.mean(tf.relu(tf.sub(gap, margin))) as tf.Scalar;
  });
}

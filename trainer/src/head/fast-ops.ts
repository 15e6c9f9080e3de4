import * as tf from '@tensorflow/tfjs-core';

/**
 * Ops whose stock tfjs gradients are slow on the wasm backend: matMul with
 * transpose flags leaves XNNPACK's fast path (~10x slower), and the gradient of
 * min() materialises a broadcast mask over every patch. These versions give
 * the same values and gradients with explicit transposes and a sparse min
 * gradient (tests/head/fast-ops.test.ts checks them against the plain ops).
 */

/** x [N, K] @ w [K, M]; `inputGrad: false` skips dx (frozen features feeding the add-on). */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, opts: { inputGrad: boolean }): tf.Tensor2D {
  const f = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    save([a, b]);
    return {
      value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
        const dw = tf.matMul(tf.transpose(sa), dy as tf.Tensor2D);
        const dx = opts.inputGrad ? tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)) : tf.zerosLike(sa);
        return [dx, dw];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, w) as tf.Tensor2D;
}

/**
 * Gradient of squared distances taken at chosen patches: saved = [z [B*HW, P], protos [m, P],
 * patch indices [B, m, perPair]]; each chosen patch receives 2(z - p) * dy and its prototype the opposite.
 */
function sparseDistanceGrad(
  dy: tf.Tensor,
  saved: tf.Tensor[],
  batch: number,
  hw: number,
  perPair: number,
): tf.Tensor[] {
  const [sz, sp, sidx] = saved;
  const P = sz.shape[1]!;
  const m = sp.shape[0]!;
  const zv = sz.dataSync() as Float32Array;
  const pv = sp.dataSync() as Float32Array;
  const iv = sidx.dataSync() as Int32Array;
  const g = dy.dataSync() as Float32Array;
  const dz = new Float32Array(zv.length);
  const dp = new Float32Array(pv.length);
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < m; j++) {
      const prow = j * P;
      for (let r = 0; r < perPair; r++) {
        const at = (b * m + j) * perPair + r;
        if (g[at] === 0) continue;
        const row = (b * hw + iv[at]) * P;
        const s = 2 * g[at];
        for (let c = 0; c < P; c++) {
          const diff = s * (zv[row + c] - pv[prow + c]);
          dz[row + c] += diff;
          dp[prow + c] -= diff;
        }
      }
    }
  }
  return [tf.tensor2d(dz, sz.shape as [number, number]), tf.tensor2d(dp, sp.shape as [number, number])];
}

/**
 * For each image and prototype, the smallest squared L2 distance over the
 * image's patches. z: [B*HW, P] patch embeddings (image-major), protos: [m, P].
 * Returns [B, m]. Gradient: only the arg-min patch of each (image, prototype)
 * pair receives 2(z - p) * dy (and the prototype the opposite), computed sparsely.
 * `refine`: the minimum is recomputed directly at the arg-min patch (refineMinDistances),
 * for evaluation; training keeps the expansion's value (no host round trip).
 */
export function minSquaredDistances(
  z: tf.Tensor2D,
  protos: tf.Tensor2D,
  batch: number,
  hw: number,
  refine = false,
): tf.Tensor2D {
  const f = tf.customGrad(((zIn: tf.Tensor, pIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const zz = zIn as tf.Tensor2D;
    const pp = pIn as tf.Tensor2D;
    const m = pp.shape[0];
    const d = squaredDistancesFast(zz, pp); // [B*HW, m]
    const d3 = tf.reshape(d, [batch, hw, m]);
    const arg = tf.argMin(d3, 1); // [B, m] patch index within the image
    const minD = refine
      ? tf.tensor2d(
          refineMinDistances(
            zz.dataSync() as Float32Array,
            pp.dataSync() as Float32Array,
            arg.dataSync() as Int32Array,
            batch,
            hw,
          ),
          [batch, m],
        )
      : (tf.min(d3, 1) as tf.Tensor2D);
    save([zz, pp, arg]);
    return {
      value: minD,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => sparseDistanceGrad(dy, saved, batch, hw, 1),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(z, protos) as tf.Tensor2D;
}

/**
 * The k smallest squared L2 distances of each (image, prototype) over the image's patches,
 * ascending: [B, m, k]. As minSquaredDistances (k = 1 is that op, reshaped), the gradient
 * reaches only the k chosen patches, computed sparsely; `refine` recomputes each value
 * directly at its patch.
 */
export function nearestSquaredDistances(
  z: tf.Tensor2D,
  protos: tf.Tensor2D,
  batch: number,
  hw: number,
  k: number,
  refine = false,
): tf.Tensor3D {
  if (k === 1) return tf.tidy(() => tf.expandDims(minSquaredDistances(z, protos, batch, hw, refine), 2) as tf.Tensor3D);
  if (!Number.isInteger(k) || k < 1 || k > hw)
    throw new Error(`nearestSquaredDistances: k must be an integer in [1, ${hw}] (the patches per image), got ${k}`);
  const f = tf.customGrad(((zIn: tf.Tensor, pIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const zz = zIn as tf.Tensor2D;
    const pp = pIn as tf.Tensor2D;
    const m = pp.shape[0];
    const d = squaredDistancesFast(zz, pp); // [B*HW, m]
    const perPair = tf.transpose(tf.reshape(d, [batch, hw, m]), [0, 2, 1]); // [B, m, HW]
    const { values, indices } = tf.topk(tf.neg(perPair), k, true); // nearest first
    const nearest = refine
      ? tf.tensor3d(
          refineMinDistances(
            zz.dataSync() as Float32Array,
            pp.dataSync() as Float32Array,
            indices.dataSync() as Int32Array,
            batch,
            hw,
            k,
          ),
          [batch, m, k],
        )
      : (tf.neg(values) as tf.Tensor3D);
    save([zz, pp, indices]);
    return {
      value: nearest,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => sparseDistanceGrad(dy, saved, batch, hw, k),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(z, protos) as tf.Tensor3D;
}

/**
 * ||z_k - p_j||^2 summed in float64 at each (image, prototype)'s nearest patch k
 * (arg: [B, m, perPair] patch indices within the image). The expansion in
 * squaredDistancesFast loses ~1e-6 to cancellation; this is exact to float32
 * rounding of the result, so two implementations (tfjs, the ONNX export) agree.
 */
export function refineMinDistances(
  z: Float32Array,
  protos: Float32Array,
  arg: Int32Array,
  batch: number,
  hw: number,
  perPair = 1,
): Float32Array {
  const m = arg.length / (batch * perPair);
  const P = protos.length / m;
  const out = new Float32Array(arg.length);
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < m; j++) {
      const prow = j * P;
      for (let r = 0; r < perPair; r++) {
        const at = (b * m + j) * perPair + r;
        const row = (b * hw + arg[at]) * P;
        let s = 0;
        for (let k = 0; k < P; k++) {
          const t = z[row + k] - protos[prow + k];
          s += t * t;
        }
        out[at] = s;
      }
    }
  }
  return out;
}

/** ||z||^2 - 2 z.p + ||p||^2 with the prototype matrix transposed up front (fast matmul path). */
export function squaredDistancesFast(z: tf.Tensor2D, protos: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const zz = tf.sum(tf.square(z), 1, true);
    const pp = tf.reshape(tf.sum(tf.square(protos), 1), [1, -1]);
    const zp = tf.matMul(z, tf.transpose(protos));
    return tf.relu(tf.add(tf.sub(zz, tf.mul(2, zp)), pp)) as tf.Tensor2D;
  });
}

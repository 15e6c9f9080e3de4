/**
 * The ProtoPNet head as ONNX nodes, reading an NCHW feature map [N, D, H, W]
 * (the layout both backbone paths produce in ONNX):
 *
 *   add-on i      z = act_i(Conv1x1(z, W_i^T, b_i))        (= z @ W_i + b_i per patch)
 *   ||z||^2       ReduceSumSquare over channels            [N, 1, H, W]
 *   2 z.p         Conv1x1(z, 2P)                           [N, m, H, W]
 *   distances     Relu(||z||^2 - 2 z.p + ||p||^2)          [N, m, H, W]  (prototype-major maps)
 *   min           nearest patch k by ArgMin over H, W, then ||z_k - p||^2 directly  [N, m]
 *   similarities  Log((d + 1) / (d + eps))                 [N, m]
 *   logits        MatMul(similarities, lastLayer) in float64 [N, C]
 *
 * This is the trainer's arithmetic (fast-ops.ts squaredDistancesFast, the
 * relu clamp included, and refineMinDistances) in the same order; scaling P by
 * 2 is exact in binary floating point, so folding it into the weights changes
 * no value.
 *
 * Opset: any from 11 on; Reduce* axes are attributes below 18 and inputs from 18
 * (GraphBuilder.reduce). ReduceSum (axes input since 13) is not used.
 */
import {
  OnnxDataType,
  encodeModel,
  makeGraph,
  makeModel,
  makeValueInfo,
  type OnnxDim,
  type OnnxValueInfo,
} from '../onnx/onnx-proto.ts';
import type { ActivationName } from '../head/activations.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import { GraphBuilder } from '../onnx/graph-builder.ts';

/** activations.ts l2norm: x / sqrt(sum(x^2) + 1e-12). Keep in sync. */
export const L2NORM_EPSILON = 1e-12;

export const HEAD_OUTPUT_NAMES = { logits: 'logits', similarities: 'similarities', distances: 'distances' } as const;

/** Host copies of everything the head graph needs. */
export interface HeadExportWeights {
  inputChannels: number;
  /** w: [in, out] row-major (as head.addOnW), b: [out]. */
  addOn: { w: Float32Array; b: Float32Array; inChannels: number; outChannels: number; activation: ActivationName }[];
  /** [m, P] row-major. */
  prototypes: Float32Array;
  numPrototypes: number;
  prototypeDim: number;
  /** [m, C] row-major. */
  lastLayer: Float32Array;
  numClasses: number;
  epsilon: number;
}

/** Reads the head's variables; tied prototypes are synced into the prototype variable first (as saveModel does). */
export function headExportWeights(head: ProtoHead): HeadExportWeights {
  if (head.topK > 1)
    throw new Error(
      `ONNX export: the head averages each similarity over ${head.topK} patches (head.similarityTopK); the export computes the single closest patch only`,
    );
  head.syncTiedPrototypes();
  const read = (v: { dataSync(): unknown }): Float32Array => Float32Array.from(v.dataSync() as Float32Array);
  let inChannels = head.spec.inputChannels;
  const addOn = head.spec.addOn.map((layer, i) => {
    const entry = {
      w: read(head.addOnW[i]),
      b: read(head.addOnB[i]),
      inChannels,
      outChannels: layer.channels,
      activation: layer.activation,
    };
    inChannels = layer.channels;
    return entry;
  });
  return {
    inputChannels: head.spec.inputChannels,
    addOn,
    prototypes: read(head.prototypes),
    numPrototypes: head.numPrototypes,
    prototypeDim: head.prototypeDim,
    lastLayer: read(head.lastLayer),
    numClasses: head.spec.numClasses,
    epsilon: head.epsilon,
  };
}

export interface HeadGraphOptions {
  /** NCHW feature map tensor [N, D, H, W]. */
  features: string;
  /** Batch, height and width for the output shapes (numbers, or symbolic names). */
  batch?: OnnxDim;
  height: OnnxDim;
  width: OnnxDim;
  /** Prefix of the head's internal tensor names. Default 'head/'. */
  prefix?: string;
}

/** Appends the head to `b`; returns the three graph outputs (logits, similarities, distances). */
export function addHeadNodes(b: GraphBuilder, w: HeadExportWeights, opts: HeadGraphOptions): OnnxValueInfo[] {
  const pre = opts.prefix ?? 'head/';
  const n = opts.batch ?? 'N';
  const m = w.numPrototypes;
  let z = opts.features;
  w.addOn.forEach((layer, i) => {
    const { inChannels: cin, outChannels: cout } = layer;
    const kernel = new Float32Array(cout * cin);
    for (let r = 0; r < cin; r++) for (let c = 0; c < cout; c++) kernel[c * cin + r] = layer.w[r * cout + c];
    const wName = b.floatInit(`${pre}addon${i}/w`, [cout, cin, 1, 1], kernel);
    const bName = b.floatInit(`${pre}addon${i}/b`, [cout], layer.b);
    z = b.add('Conv', [z, wName, bName], `${pre}addon${i}/linear`, { kernel_shape: [1, 1] });
    z = activationNodes(b, layer.activation, z, `${pre}addon${i}`);
  });

  const twoP = w.prototypes.map((v) => 2 * v);
  const pp = new Float32Array(m);
  for (let j = 0; j < m; j++) {
    let s = 0;
    for (let k = 0; k < w.prototypeDim; k++) s += w.prototypes[j * w.prototypeDim + k] ** 2;
    pp[j] = s;
  }
  const zz = b.reduce('ReduceSumSquare', z, [1], true, `${pre}z_sq`);
  const twoPName = b.floatInit(`${pre}prototypes_x2`, [m, w.prototypeDim, 1, 1], twoP);
  const zp2 = b.add('Conv', [z, twoPName], `${pre}zp_x2`, { kernel_shape: [1, 1] });
  const diff = b.add('Sub', [zz, zp2], `${pre}zz_minus_2zp`);
  const sum = b.add('Add', [diff, b.floatInit(`${pre}prototypes_sq`, [1, m, 1, 1], pp)], `${pre}dist_raw`);
  const distances = b.add('Relu', [sum], HEAD_OUTPUT_NAMES.distances, {}, { output: HEAD_OUTPUT_NAMES.distances });

  // The expansion above loses ~1e-6 to cancellation, and the similarity is steep near 0
  // (d = 0.07: 14 per unit of d), which summed over 2,000 prototypes moves logits by ~1e-3.
  // So the expansion only picks each prototype's nearest patch; its distance is then
  // recomputed directly as ||z_k - p||^2 (as the trainer does, fast-ops.ts refineMinDistances).
  const hw = b.int64Init(`${pre}n_p_hw`, [3], [0, w.prototypeDim, -1]);
  const patchesFirst = b.add('Transpose', [b.add('Reshape', [z, hw], `${pre}z_flat`)], `${pre}z_patches`, {
    perm: [0, 2, 1],
  });
  const flatD = b.add('Reshape', [distances, b.int64Init(`${pre}n_m_hw`, [3], [0, m, -1])], `${pre}distances_flat`);
  const nearest = b.add('ArgMin', [flatD], `${pre}nearest_patch`, { axis: 2, keepdims: 1 });
  const zNearest = b.add('GatherND', [patchesFirst, nearest], `${pre}z_nearest`, { batch_dims: 1 });
  // P = 2P / 2 exactly; one copy of the prototypes in the file (folded at session creation).
  const protos = b.add(
    'Mul',
    [
      b.add('Reshape', [twoPName, b.int64Init(`${pre}m_p`, [2], [m, w.prototypeDim])], `${pre}prototypes_x2_flat`),
      b.floatInit(`${pre}half`, [], [0.5]),
    ],
    `${pre}prototypes`,
  );
  const diffs = b.add('Sub', [zNearest, protos], `${pre}z_nearest_minus_p`);
  const dmin = b.reduce('ReduceSumSquare', diffs, [2], false, `${pre}min_distances`);
  const one = b.floatInit(`${pre}one`, [], [1]);
  const eps = b.floatInit(`${pre}epsilon`, [], [w.epsilon]);
  const ratio = b.add(
    'Div',
    [b.add('Add', [dmin, one], `${pre}d_plus_1`), b.add('Add', [dmin, eps], `${pre}d_plus_eps`)],
    `${pre}ratio`,
  );
  const sim = b.add('Log', [ratio], HEAD_OUTPUT_NAMES.similarities, {}, { output: HEAD_OUTPUT_NAMES.similarities });
  const lastLayer = b.floatInit(`${pre}last_layer`, [m, w.numClasses], w.lastLayer);
  // The last layer sums m terms into logits of magnitude ~m: in float32 two summation orders
  // differ by ~1e-3 at m = 2,000. Summing in float64 makes the export the exact reference
  // (weights stay float32 in the file; the cast of the initializer folds at load).
  const DOUBLE = 11;
  const sim64 = b.add('Cast', [sim], `${pre}similarities_f64`, { to: DOUBLE });
  const lastLayer64 = b.add('Cast', [lastLayer], `${pre}last_layer_f64`, { to: DOUBLE });
  const logits64 = b.add('MatMul', [sim64, lastLayer64], `${pre}logits_f64`);
  const logits = b.add(
    'Cast',
    [logits64],
    HEAD_OUTPUT_NAMES.logits,
    { to: OnnxDataType.FLOAT },
    { output: HEAD_OUTPUT_NAMES.logits },
  );

  return [
    makeValueInfo(logits, OnnxDataType.FLOAT, [n, w.numClasses]),
    makeValueInfo(sim, OnnxDataType.FLOAT, [n, m]),
    makeValueInfo(distances, OnnxDataType.FLOAT, [n, m, opts.height, opts.width]),
  ];
}

function activationNodes(b: GraphBuilder, act: ActivationName, x: string, base: string): string {
  switch (act) {
    case 'linear':
      return x;
    case 'relu':
      return b.add('Relu', [x], `${base}/relu`);
    case 'sigmoid':
      return b.add('Sigmoid', [x], `${base}/sigmoid`);
    case 'l2norm': {
      const sq = b.reduce('ReduceSumSquare', x, [1], true, `${base}/sq`);
      const norm = b.add(
        'Sqrt',
        [b.add('Add', [sq, b.floatInit(`${base}/l2_eps`, [], [L2NORM_EPSILON])], `${base}/sq_eps`)],
        `${base}/norm`,
      );
      return b.add('Div', [x, norm], `${base}/l2norm`);
    }
    default: {
      const never: never = act;
      throw new Error(`ONNX export: activation "${String(never)}" has no ONNX form yet`);
    }
  }
}

/** A head-only model: input `features` NCHW [N, D, H, W] → logits, similarities, distances. */
export function buildHeadModel(
  w: HeadExportWeights,
  opts: { height: number; width: number; opset?: number },
): Uint8Array {
  const opset = opts.opset ?? 13;
  const b = new GraphBuilder(opset);
  const features = b.claim('features');
  const outputs = addHeadNodes(b, w, { features, height: opts.height, width: opts.width });
  const { nodes, initializers } = b.encode();
  const graph = makeGraph({
    name: 'protopnet_head',
    nodes,
    initializers,
    inputs: [makeValueInfo(features, OnnxDataType.FLOAT, ['N', w.inputChannels, opts.height, opts.width])],
    outputs,
  });
  return encodeModel(makeModel(graph, { '': opset }, irVersionFor(opset)));
}

/** Lowest IR version that the opset needs (ONNX versioning table: opset 13 → IR 7, 15–18 → 8, 19–20 → 9, 21+ → 10). */
export function irVersionFor(opset: number): number {
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  if (opset >= 15) return 8;
  return 7;
}

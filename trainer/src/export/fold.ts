/**
 * Rewrites on a GraphBuilder that make a converted Keras graph cheaper at
 * inference: BatchNormalization folded into the Conv before it, and zero
 * Pad nodes (Keras ZeroPadding2D) merged into the following Conv's pads.
 * Both only fire when the intermediate tensor has no other reader.
 */
import type { GraphBuilder, Initializer } from '../onnx/graph-builder.ts';

/** Folds every foldable BatchNormalization; returns how many were folded. */
export function foldBatchNorms(b: GraphBuilder, keep: ReadonlySet<string> = new Set()): number {
  let folded = 0;
  for (const bn of [...b.nodes]) {
    if (bn.op !== 'BatchNormalization') continue;
    const x = bn.inputs[0];
    const conv = b.producerOf(x);
    if (conv?.op !== 'Conv' || keep.has(x) || b.consumersOf(x).length !== 1) continue;
    const w = floatInit(b, conv.inputs[1]);
    const [gamma, beta, mean, variance] = bn.inputs.slice(1, 5).map((n) => floatInit(b, n));
    if (!w || !gamma || !beta || !mean || !variance) continue;
    const bias = conv.inputs[2] ? floatInit(b, conv.inputs[2]) : undefined;
    if (conv.inputs[2] && !bias) continue;
    const eps = typeof bn.attrs.epsilon === 'object' && 'float' in bn.attrs.epsilon ? bn.attrs.epsilon.float : 1e-5;
    const cout = w.dims[0];
    const per = w.data.length / cout;
    const weightData = w.data as Float32Array;
    const newW = new Float32Array(weightData.length);
    const newB = new Float32Array(cout);
    for (let c = 0; c < cout; c++) {
      // Float64 scale, one rounding per stored value.
      const s = Number(gamma.data[c]) / Math.sqrt(Number(variance.data[c]) + eps);
      for (let k = 0; k < per; k++) newW[c * per + k] = weightData[c * per + k] * s;
      newB[c] = ((bias ? Number(bias.data[c]) : 0) - Number(mean.data[c])) * s + Number(beta.data[c]);
    }
    // Fresh initializers: the originals may be shared with other nodes.
    conv.inputs[1] = b.floatInit(`${conv.inputs[1]}_bnfold`, w.dims, newW);
    conv.inputs[2] = b.floatInit(`${bn.outputs[0]}_bias`, [cout], newB);
    conv.outputs[0] = bn.outputs[0];
    b.nodes.splice(b.nodes.indexOf(bn), 1);
    folded++;
  }
  return folded;
}

/** Merges constant-zero Pad nodes on H/W into the Conv that reads them; returns how many. */
export function foldZeroPads(b: GraphBuilder, keep: ReadonlySet<string> = new Set()): number {
  let folded = 0;
  for (const pad of [...b.nodes]) {
    if (pad.op !== 'Pad' || (pad.attrs.mode !== undefined && pad.attrs.mode !== 'constant')) continue;
    const y = pad.outputs[0];
    const readers = b.consumersOf(y);
    if (keep.has(y) || readers.length !== 1 || readers[0].op !== 'Conv' || readers[0].inputs[0] !== y) continue;
    const conv = readers[0];
    const pads = intInit(b, pad.inputs[1]);
    const value = pad.inputs[2] ? floatInit(b, pad.inputs[2]) : undefined;
    if (pads?.length !== 8 || (value && value.data[0] !== 0)) continue;
    // ONNX Pad order: [n0, c0, h0, w0, n1, c1, h1, w1]; only spatial padding can move into Conv.
    if (pads[0] || pads[1] || pads[4] || pads[5]) continue;
    const old = (conv.attrs.pads as number[] | undefined) ?? [0, 0, 0, 0];
    conv.attrs.pads = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]];
    conv.inputs[0] = pad.inputs[0];
    b.nodes.splice(b.nodes.indexOf(pad), 1);
    folded++;
  }
  return folded;
}

function floatInit(b: GraphBuilder, name: string): Initializer | undefined {
  const t = b.initializers.get(name);
  return t && t.data instanceof Float32Array ? t : undefined;
}

function intInit(b: GraphBuilder, name: string | undefined): number[] | undefined {
  const t = name ? b.initializers.get(name) : undefined;
  return t && Array.isArray(t.data) ? t.data : undefined;
}

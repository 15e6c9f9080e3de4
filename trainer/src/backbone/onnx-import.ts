import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import {
  decodeModel,
  encodeModel,
  makeAttribute,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  OnnxDataType,
  tensorValues,
  type OnnxGraph,
  type OnnxNode,
  type OnnxTensor,
} from '../onnx/onnx-proto.ts';
import { locateTap } from './onnx-tap.ts';
import { decodeMessage, repeatedVarints, stringOf, toInt64, varintOf } from '../onnx/protobuf-wire.ts';
import { applyGraphEdits, describeGraphEdits, graphEditsKey, type BackboneGraphEdits } from './graph-edits.ts';
import { isInputBlurConv } from './input-blur.ts';
import type { OutputStride } from './output-stride.ts';
import type { FeatureShape, FrozenBackbone, PreprocessSpec, TrainableBackbone } from './types.ts';

/**
 * An ONNX CNN (float, or int8 in QOperator form such as the model zoo's
 * MobileNetV2) rebuilt as TensorFlow.js ops with float tf.Variables, so it can
 * be fine-tuned. Quantised weights are dequantised (per-channel scales); an
 * output range that starts at 0 is the ReLU/ReLU6 the int8 export folded into
 * it, and is kept as a fused ReLU with an upper cap.
 */
export interface OnnxImportOptions {
  path: string;
  /** Feature tensor: 'auto' = the input of the last global average pool. */
  tap: string;
  preprocess: PreprocessSpec;
  /**
   * Start the network at this tensor instead of the image: only the layers between it and the
   * tap are imported (the top of a network fine-tuned on cached activations of its frozen bottom).
   * `fromShape` is that tensor's NHWC shape without N.
   */
  from?: string;
  fromShape?: FeatureShape;
  /** Dilate the network for a finer feature map (output-stride.ts), as the frozen backbone does. */
  outputStride?: number;
  /** A fixed Gaussian blur in front of the network (input-blur.ts): imported as a conv that never trains. */
  inputBlur?: number;
}

type Step = (env: Map<string, tf.Tensor>) => void;

interface ConvWeights {
  name: string;
  node: OnnxNode;
  kernel: tf.Variable; // [kh, kw, in, out] or depthwise [kh, kw, in, 1]
  bias: tf.Variable;
}

function attrInts(node: OnnxNode, name: string): number[] | null {
  for (const a of node.attributes) {
    const f = decodeMessage(a);
    if (stringOf(f, 1) !== name) continue;
    const ints = repeatedVarints(f, 8).map(toInt64);
    if (ints.length) return ints;
    const i = varintOf(f, 3);
    if (i !== undefined) return [toInt64(i)];
  }
  return null;
}

/** An imported backbone: trainable, usable frozen, and exportable with its current (tuned) weights. */
export type ImportedOnnxBackbone = TrainableBackbone &
  FrozenBackbone & {
    toOnnx(): { bytes: Uint8Array; tap: string };
    /**
     * Sets the convs after tensor `from` to the weights of a part imported with that `from` (its
     * getWeights(), e.g. a checkpoint of a partial fine-tune), without building the part.
     */
    setPartWeights(from: string, weights: ReadonlyMap<string, { shape: number[]; data: Float32Array }>): void;
    /** Kernel and bias of each conv, by ONNX node name. */
    readonly convsByNode: ReadonlyMap<string, { kernel: tf.Variable; bias: tf.Variable }>;
  };

export async function importOnnxBackbone(opts: OnnxImportOptions): Promise<ImportedOnnxBackbone> {
  const bytes = new Uint8Array(await readFile(opts.path));
  const decoded = decodeModel(bytes).graph;
  const edits: BackboneGraphEdits = {
    outputStride: opts.outputStride as OutputStride | undefined,
    inputBlur: opts.inputBlur,
  };
  const graph = applyGraphEdits(decoded, edits);
  if (opts.from && !opts.fromShape) throw new Error(`ONNX import: "from" ${opts.from} needs its fromShape`);
  const tap = locateTap(graph, opts.tap).tensor;
  const init = new Map(graph.initializers.map((t) => [t.name, t]));
  const values = new Map<string, number[]>();
  const val = (name: string): number[] => {
    let v = values.get(name);
    if (!v) {
      const t = init.get(name);
      if (!t)
        throw new Error(
          `ONNX import: "${name}" is not a constant (only constant weights and quantisation parameters are supported)`,
        );
      values.set(name, (v = tensorValues(t)));
    }
    return v;
  };
  const scalar = (name: string) => val(name)[0];
  const rangeOf = (scaleName: string, zpName: string, zpType: number): [number, number] => {
    const s = scalar(scaleName);
    const zp = scalar(zpName);
    const [lo, hi] = zpType === 3 ? [-128, 127] : [0, 255];
    return [(lo - zp) * s, (hi - zp) * s];
  };
  const typeOf = (name: string) => (init.get(name) as OnnxTensor | undefined)?.dataType ?? 2;

  const convs: ConvWeights[] = [];
  // Fixed convs (the input blur): computed and exported like the others, never trained, saved or counted.
  const fixed: ConvWeights[] = [];
  const steps: Step[] = [];
  // The same network as ONNX float ops, for exporting a fine-tuned copy.
  const plan: PlanStep[] = [];
  const inputName = opts.from ?? graph.inputs.find((i) => !init.has(i.name))?.name;
  if (!inputName) throw new Error('ONNX import: the graph has no image input');
  const needed = neededNodes(graph, tap, inputName);
  if (opts.from && !graph.nodes.some((n) => needed.has(n) && n.inputs.includes(inputName)))
    throw new Error(`ONNX import: the tap ${tap} does not depend on "from" tensor ${opts.from}`);
  for (const node of graph.nodes) {
    if (!needed.has(node)) continue;
    const [x] = node.inputs;
    const y = node.outputs[0];
    switch (node.opType) {
      case 'QuantizeLinear': {
        const [lo, hi] = rangeOf(node.inputs[1], node.inputs[2], typeOf(node.inputs[2]));
        steps.push((env) => env.set(y, tf.clipByValue(env.get(x)!, lo, hi)));
        plan.push({ kind: 'clip', x, y, lo, hi });
        break;
      }
      case 'DequantizeLinear':
        steps.push((env) => env.set(y, env.get(x)!));
        plan.push({ kind: 'identity', x, y });
        break;
      case 'QLinearConv':
      case 'Conv': {
        const q = node.opType === 'QLinearConv';
        const wName = q ? node.inputs[3] : node.inputs[1];
        const bName = q ? node.inputs[8] : node.inputs[2];
        const wT = init.get(wName);
        if (!wT) throw new Error(`ONNX import: conv weight "${wName}" is not a constant`);
        const [cout, cinPerGroup, kh, kw] = wT.dims;
        const group = attrInts(node, 'group')?.[0] ?? 1;
        const strides = attrInts(node, 'strides') ?? [1, 1];
        const pads = attrInts(node, 'pads') ?? [0, 0, 0, 0];
        const dil = attrInts(node, 'dilations') ?? [1, 1];
        const raw = val(wName);
        const wScale = q ? val(node.inputs[4]) : [1];
        const wZp = q ? val(node.inputs[5]) : [0];
        const xScale = q ? scalar(node.inputs[1]) : 1;
        const depthwise = group > 1 && group === cout && cinPerGroup === 1;
        if (group > 1 && !depthwise)
          throw new Error(`ONNX import: grouped conv ${node.name} (group ${group}) is not supported`);
        // A dilation only matters for kernels wider than 1; tfjs has gradients for neither dilated
        // kind, so dilated depthwise convs run as a sum of shifted slices (dilatedDepthwise).
        const dilated = dil.some((d) => d !== 1) && kh * kw > 1;
        if (dilated && (!depthwise || strides.some((v) => v !== 1)))
          throw new Error(
            `ONNX import: conv ${node.name} is dilated but not a stride-1 depthwise conv, which is all the import can train`,
          );
        // ONNX [out, in, kh, kw] -> tf [kh, kw, in, out] (depthwise: [kh, kw, channels, 1]).
        const inC = depthwise ? cout : cinPerGroup;
        const outC = depthwise ? 1 : cout;
        const k = new Float32Array(kh * kw * inC * outC);
        for (let o = 0; o < cout; o++) {
          const sc = wScale.length > 1 ? wScale[o] : wScale[0];
          const zp = wZp.length > 1 ? wZp[o] : wZp[0];
          for (let i = 0; i < cinPerGroup; i++) {
            for (let r = 0; r < kh; r++) {
              for (let c = 0; c < kw; c++) {
                const v = (raw[((o * cinPerGroup + i) * kh + r) * kw + c] - zp) * sc;
                const dst = depthwise ? ((r * kw + c) * inC + o) * outC : ((r * kw + c) * inC + i) * outC + o;
                k[dst] = v;
              }
            }
          }
        }
        const b = new Float32Array(cout);
        if (bName && init.has(bName)) {
          const bq = val(bName);
          for (let o = 0; o < cout; o++)
            b[o] = q ? bq[o] * xScale * (wScale.length > 1 ? wScale[o] : wScale[0]) : bq[o];
        }
        const name = node.name || y;
        const trains = !isInputBlurConv(node);
        const weights: ConvWeights = {
          name,
          node,
          kernel: tf.variable(tf.tensor4d(k, [kh, kw, inC, outC]), trains),
          bias: tf.variable(tf.tensor1d(b), trains),
        };
        (trains ? convs : fixed).push(weights);
        const range = q ? rangeOf(node.inputs[6], node.inputs[7], typeOf(node.inputs[7])) : null;
        // A range starting at 0 is a fused ReLU (ReLU6 when it ends near 6): fuse the ReLU into the
        // conv and cap above. A range around 0 is a linear layer: its int8 saturation is not an
        // activation, so float training leaves it out (one less element-wise op and its gradient).
        const relu = range !== null && range[0] === 0;
        const symmetric = pads[0] === pads[2] && pads[1] === pads[3] && pads[0] === pads[1];
        const padding: [[number, number], [number, number], [number, number], [number, number]] = [
          [0, 0],
          [pads[0], pads[2]],
          [pads[1], pads[3]],
          [0, 0],
        ];
        const st: [number, number] = [strides[0], strides[1]];
        steps.push((env) => {
          const input = env.get(x)! as tf.Tensor4D;
          // Symmetric padding goes into the conv itself: no Pad op, no Slice in the backward pass.
          const padded = symmetric ? input : (tf.pad(input, padding) as tf.Tensor4D);
          const pad = symmetric ? pads[0] : 0;
          const args = {
            x: padded,
            filter: weights.kernel as tf.Tensor4D,
            strides: st,
            pad,
            bias: weights.bias,
            activation: relu ? ('relu' as const) : ('linear' as const),
          };
          const out = dilated
            ? dilatedDepthwise(input, weights, pads, [dil[0], dil[1]], relu)
            : depthwise
              ? tf.fused.depthwiseConv2d(args)
              : tf.fused.conv2d(args);
          env.set(y, relu ? tf.minimum(out, range![1]) : out);
        });
        plan.push({
          kind: 'conv',
          x,
          y,
          weights,
          strides: st,
          pads,
          dilations: [dil[0], dil[1]],
          depthwise,
          hi: relu ? range![1] : null,
        });
        break;
      }
      case 'QLinearAdd': {
        const [a, , , bIn, , , cScale, cZp] = node.inputs;
        const [lo, hi] = rangeOf(cScale, cZp, typeOf(cZp));
        // As for convs: only a range starting at 0 is an activation.
        steps.push((env) => {
          const sum = tf.add(env.get(a)!, env.get(bIn)!);
          env.set(y, lo === 0 ? tf.clipByValue(sum, 0, hi) : sum);
        });
        plan.push({ kind: 'add', a, b: bIn, y, hi: lo === 0 ? hi : null });
        break;
      }
      case 'Add':
        steps.push((env) => env.set(y, tf.add(env.get(node.inputs[0])!, env.get(node.inputs[1])!)));
        plan.push({ kind: 'add', a: node.inputs[0], b: node.inputs[1], y, hi: null });
        break;
      case 'Relu':
        steps.push((env) => env.set(y, tf.relu(env.get(x)!)));
        plan.push({ kind: 'clip', x, y, lo: 0, hi: Infinity });
        break;
      case 'Clip': {
        const lo = node.inputs[1] ? scalar(node.inputs[1]) : -Infinity;
        const hi = node.inputs[2] ? scalar(node.inputs[2]) : Infinity;
        steps.push((env) => env.set(y, tf.clipByValue(env.get(x)!, lo, hi)));
        plan.push({ kind: 'clip', x, y, lo, hi });
        break;
      }
      default:
        throw new Error(
          `ONNX import: operator ${node.opType} (${node.name}) on the way to the features is not supported; supported: QuantizeLinear, DequantizeLinear, QLinearConv, Conv, QLinearAdd, Add, Relu, Clip`,
        );
    }
  }

  const size = opts.preprocess.size;
  const computed = (env: Map<string, tf.Tensor>, name: string): tf.Tensor4D => {
    const f = env.get(name);
    if (!f) throw new Error(`ONNX import: the tensor "${name}" was not computed`);
    return f as tf.Tensor4D;
  };
  const runAll = (x: tf.Tensor4D): Map<string, tf.Tensor> => {
    const env = new Map<string, tf.Tensor>([[inputName, x]]);
    for (const s of steps) s(env);
    return env;
  };
  const run = (x: tf.Tensor4D): tf.Tensor4D => tf.tidy(() => computed(runAll(x), tap));
  // Only tensors on the way to the tap are computed; others would need the pruned part of the graph.
  const onTheWay = new Set([inputName, ...graph.nodes.filter((n) => needed.has(n)).flatMap((n) => n.outputs)]);
  const probe = run(tf.zeros([1, ...(opts.fromShape ?? [size, size, 3])]));
  const featureShape = probe.shape.slice(1) as FeatureShape;
  probe.dispose();
  const hash = createHash('sha256')
    .update(bytes)
    .update(`\0import tap=${tap}`)
    .update(opts.from ? `\0from=${opts.from}` : '')
    .update(graphEditsKey(edits))
    .digest('hex');
  const vars = convs.flatMap((c) => [c.kernel, c.bias]);
  const named = () =>
    new Map(convs.flatMap((c, i) => [[`conv${i}.kernel`, c.kernel] as const, [`conv${i}.bias`, c.bias] as const]));

  return {
    hash,
    description: `onnx ${opts.path} imported as trainable float (${convs.length} convs${opts.from ? ` from ${opts.from}` : ''}), tap ${tap}${describeGraphEdits({ inputBlur: opts.inputBlur })}`,
    preprocess: opts.preprocess,
    featureShape,
    // The graph is NCHW in ONNX; here it runs NHWC, as every tfjs backbone does.
    apply: (x) => run(x),
    applyWithInner(x, _training, inner) {
      if (!onTheWay.has(inner))
        throw new Error(
          `ONNX import: "${inner}" is not a tensor on the way from ${inputName} to the tap ${tap} in ${opts.path}; name one of the outputs of the nodes before it (e.g. a QLinearAdd's)`,
        );
      return tf.tidy(() => {
        const env = runAll(x);
        return [computed(env, tap), computed(env, inner)];
      });
    },
    async extract(batch, n) {
      const inShape = opts.fromShape ?? [size, size, 3];
      const per = inShape[0] * inShape[1] * inShape[2];
      const out = new Float32Array(n * featureShape[0] * featureShape[1] * featureShape[2]);
      for (let s = 0; s < n; s += 16) {
        const m = Math.min(16, n - s);
        const y = run(tf.tensor4d(batch.subarray(s * per, (s + m) * per), [m, inShape[0], inShape[1], inShape[2]]));
        out.set((await y.data()) as Float32Array, s * featureShape[0] * featureShape[1] * featureShape[2]);
        y.dispose();
      }
      return out;
    },
    trainableVariables: () => vars,
    workerRecipe: { module: import.meta.url, factory: 'importOnnxBackbone', options: opts },
    convsByNode: new Map(convs.map((c) => [c.name, { kernel: c.kernel, bias: c.bias }])),
    setPartWeights(from, weights) {
      if (opts.from)
        throw new Error(`ONNX import: the network from ${opts.from} is a part; set the part's own weights`);
      // The part imports the convs between `from` (resolved as the trainer resolves trainFrom) and the tap,
      // in graph order, and names them by that order.
      const part = neededNodes(graph, tap, locateTap(graph, from).tensor);
      const targets = convs.filter((c) => part.has(c.node));
      if (weights.size !== targets.length * 2)
        throw new Error(
          `ONNX import: ${weights.size} weights for the ${targets.length} convs after ${from} (a kernel and a bias each); were they tuned from another trainFrom?`,
        );
      targets.forEach((c, i) => {
        for (const [v, key] of [
          [c.kernel, `conv${i}.kernel`],
          [c.bias, `conv${i}.bias`],
        ] as const) {
          const w = weights.get(key);
          if (!w) throw new Error(`ONNX import: the weights after ${from} lack "${key}"`);
          if (w.shape.join('x') !== v.shape.join('x'))
            throw new Error(`ONNX import: "${key}" is ${w.shape.join('x')}, conv ${c.name} needs ${v.shape.join('x')}`);
          tf.tidy(() => v.assign(tf.tensor(w.data, w.shape)));
        }
      });
    },
    toOnnx: () => {
      if (opts.from) throw new Error(`ONNX import: the network from ${opts.from} is a part; export the whole one`);
      return planToOnnx(plan, inputName, tap, size);
    },
    getWeights() {
      const out = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const [k, v] of named()) out.set(k, { shape: v.shape.slice(), data: v.dataSync() as Float32Array });
      return out;
    },
    setWeights(weights) {
      for (const [k, v] of named()) {
        const w = weights.get(k);
        if (!w) throw new Error(`ONNX import: checkpoint lacks backbone weight "${k}"`);
        tf.tidy(() => v.assign(tf.tensor(w.data, w.shape)));
      }
    },
    async dispose() {
      for (const v of vars) v.dispose();
      for (const c of fixed) for (const v of [c.kernel, c.bias]) v.dispose();
    },
  } as ImportedOnnxBackbone;
}

type PlanStep =
  | { kind: 'identity'; x: string; y: string }
  | { kind: 'clip'; x: string; y: string; lo: number; hi: number }
  | {
      kind: 'conv';
      x: string;
      y: string;
      weights: ConvWeights;
      strides: [number, number];
      pads: number[];
      dilations: [number, number];
      depthwise: boolean;
      hi: number | null;
    }
  | { kind: 'add'; a: string; b: string; y: string; hi: number | null };

/**
 * The imported network as a float ONNX graph (input NCHW, the tap as output), with the
 * variables' current values: a fine-tuned backbone exports like any ONNX backbone.
 */
function planToOnnx(plan: PlanStep[], input: string, tap: string, size: number): { bytes: Uint8Array; tap: string } {
  const nodes: OnnxNode[] = [];
  const inits: OnnxTensor[] = [];
  let k = 0;
  const scalar = (v: number) => {
    const name = `tuned_c${k++}`;
    inits.push(makeTensor(name, OnnxDataType.FLOAT, [], [v]));
    return name;
  };
  const clip = (x: string, y: string, lo: number, hi: number) => {
    const loName = Number.isFinite(lo) ? scalar(lo) : '';
    const hiName = Number.isFinite(hi) ? scalar(hi) : '';
    nodes.push(makeNode('Clip', hiName ? [x, loName, hiName] : [x, loName], [y], { name: `${y}_clip` }));
  };
  for (const st of plan) {
    if (st.kind === 'identity') nodes.push(makeNode('Identity', [st.x], [st.y], { name: `${st.y}_id` }));
    else if (st.kind === 'clip') clip(st.x, st.y, st.lo, st.hi);
    else if (st.kind === 'add') {
      const out = st.hi !== null ? `${st.y}_sum` : st.y;
      nodes.push(makeNode('Add', [st.a, st.b], [out], { name: `${st.y}_add` }));
      if (st.hi !== null) clip(out, st.y, 0, st.hi);
    } else {
      const [kh, kw, inC, outC] = st.weights.kernel.shape;
      const kv = st.weights.kernel.dataSync() as Float32Array;
      const cout = st.depthwise ? inC : outC;
      const cinPerGroup = st.depthwise ? 1 : inC;
      const w = new Float32Array(cout * cinPerGroup * kh * kw);
      for (let o = 0; o < cout; o++)
        for (let i = 0; i < cinPerGroup; i++)
          for (let r = 0; r < kh; r++)
            for (let c = 0; c < kw; c++)
              w[((o * cinPerGroup + i) * kh + r) * kw + c] = st.depthwise
                ? kv[(r * kw + c) * inC + o]
                : kv[((r * kw + c) * inC + i) * outC + o];
      const wName = `${st.y}_tuned_w`;
      const bName = `${st.y}_tuned_b`;
      inits.push(
        makeTensor(wName, OnnxDataType.FLOAT, [cout, cinPerGroup, kh, kw], w),
        makeTensor(bName, OnnxDataType.FLOAT, [cout], st.weights.bias.dataSync() as Float32Array),
      );
      const out = st.hi !== null ? `${st.y}_conv` : st.y;
      nodes.push(
        makeNode('Conv', [st.x, wName, bName], [out], {
          name: `${st.y}_conv_node`,
          attributes: [
            makeAttribute('kernel_shape', [kh, kw]),
            makeAttribute('strides', st.strides),
            makeAttribute('pads', st.pads),
            makeAttribute('dilations', st.dilations),
            makeAttribute('group', st.depthwise ? cout : 1),
          ],
        }),
      );
      if (st.hi !== null) clip(out, st.y, 0, st.hi);
    }
  }
  const graph = makeGraph({
    name: 'tuned_backbone',
    nodes,
    initializers: inits,
    inputs: [makeValueInfo(input, OnnxDataType.FLOAT, ['N', 3, size, size])],
    outputs: [makeValueInfo(tap, OnnxDataType.FLOAT)],
  });
  return { bytes: encodeModel(makeModel(graph, { '': 13 })), tap };
}

/**
 * A stride-1 dilated depthwise conv as the sum of its kernel taps, each a shifted slice of the
 * padded input times a per-channel weight: every op in it has a tfjs gradient.
 */
export function dilatedDepthwise(
  input: tf.Tensor4D,
  weights: { kernel: tf.Tensor; bias: tf.Tensor },
  pads: number[],
  dilations: [number, number],
  relu: boolean,
): tf.Tensor4D {
  const [kh, kw, channels] = weights.kernel.shape;
  const [, h, w] = input.shape;
  const padded = tf.pad(input, [
    [0, 0],
    [pads[0], pads[2]],
    [pads[1], pads[3]],
    [0, 0],
  ]);
  const outH = h + pads[0] + pads[2] - (kh - 1) * dilations[0];
  const outW = w + pads[1] + pads[3] - (kw - 1) * dilations[1];
  const terms: tf.Tensor4D[] = [];
  for (let r = 0; r < kh; r++)
    for (let c = 0; c < kw; c++) {
      const tapWeight = tf.reshape(tf.slice(weights.kernel, [r, c, 0, 0], [1, 1, channels, 1]), [channels]);
      const shifted = tf.slice(padded, [0, r * dilations[0], c * dilations[1], 0], [-1, outH, outW, channels]);
      terms.push(tf.mul(shifted, tapWeight));
    }
  const sum = tf.add(tf.addN(terms), weights.bias) as tf.Tensor4D;
  return relu ? tf.relu(sum) : sum;
}

/** Nodes that feed the tap, back to `input` (everything else, e.g. the classifier, is dropped). */
function neededNodes(graph: OnnxGraph, tap: string, input: string): Set<OnnxNode> {
  const producer = new Map<string, OnnxNode>();
  for (const n of graph.nodes) for (const o of n.outputs) producer.set(o, n);
  const out = new Set<OnnxNode>();
  const stack = [tap];
  while (stack.length) {
    const t = stack.pop()!;
    if (t === input) continue;
    const n = producer.get(t);
    if (!n || out.has(n)) continue;
    out.add(n);
    stack.push(...n.inputs.filter(Boolean));
  }
  return out;
}

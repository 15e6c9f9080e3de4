/**
 * A fixed Gaussian blur in front of a network: one depthwise float Conv between the
 * graph's image input and its first consumers. Pixel noise then reaches the backbone
 * damped, so the patch where a prototype matches moves less under noise (Huang et
 * al.'s stability), at the price of the finest detail. Being a graph edit, the
 * features, the exported model and the receptive fields all see the same blur.
 */
import {
  makeAttribute,
  makeNode,
  makeTensor,
  OnnxDataType,
  type OnnxGraph,
  type OnnxNode,
} from '../onnx/onnx-proto.ts';

/** Largest sigma accepted, in input pixels: beyond it the image is a smudge at 224 px. */
export const MAX_INPUT_BLUR = 8;

/** The normalised 1-D Gaussian of `sigma` pixels, truncated at 2 sigma (at least 3 taps). */
export function gaussianTaps(sigma: number): number[] {
  if (!(sigma > 0) || sigma > MAX_INPUT_BLUR)
    throw new Error(`input blur: sigma must be in (0, ${MAX_INPUT_BLUR}] pixels, got ${sigma}`);
  const r = Math.max(1, Math.ceil(2 * sigma));
  const taps = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const sum = taps.reduce((a, b) => a + b, 0);
  return taps.map((t) => t / sum);
}

const KERNEL_SUFFIX = '__blur_kernel';

/** Whether `node` is the blur insertInputBlur adds (its weight is named for it): a conv that must never train. */
export function isInputBlurConv(node: OnnxNode): boolean {
  return node.opType === 'Conv' && (node.inputs[1]?.startsWith(`${node.inputs[0]}${KERNEL_SUFFIX}`) ?? false);
}

/**
 * Inserts the blur after the graph's single NCHW float input. Borders are zero-padded,
 * which in a normalised input is the mean colour.
 */
export function insertInputBlur(graph: OnnxGraph, sigma: number): OnnxGraph {
  const taps = gaussianTaps(sigma);
  const k = taps.length;
  const r = (k - 1) / 2;
  const initNames = new Set(graph.initializers.map((t) => t.name));
  const images = graph.inputs.filter((i) => !initNames.has(i.name));
  if (images.length !== 1)
    throw new Error(`input blur: the graph has ${images.length} non-constant inputs; it needs exactly one image input`);
  const input = images[0];
  const channels = input.shape?.[1];
  if (input.elemType !== OnnxDataType.FLOAT || input.shape?.length !== 4 || typeof channels !== 'number')
    throw new Error(
      `input blur: input "${input.name}" must be a float NCHW tensor with a fixed channel count (shape ${JSON.stringify(input.shape)})`,
    );
  const names = new Set<string>(initNames);
  for (const n of graph.nodes) for (const t of [...n.inputs, ...n.outputs]) names.add(t);
  const fresh = (base: string) => {
    let name = base;
    for (let i = 2; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return name;
  };
  const blurred = fresh(`${input.name}__blurred`);
  const weightName = fresh(`${input.name}${KERNEL_SUFFIX}`);
  const kernel = new Float32Array(channels * k * k);
  for (let c = 0; c < channels; c++)
    for (let y = 0; y < k; y++) for (let x = 0; x < k; x++) kernel[(c * k + y) * k + x] = taps[y] * taps[x];
  const conv = makeNode('Conv', [input.name, weightName], [blurred], {
    name: fresh('input_blur'),
    attributes: [
      makeAttribute('group', channels),
      makeAttribute('kernel_shape', [k, k]),
      makeAttribute('pads', [r, r, r, r]),
      makeAttribute('strides', [1, 1]),
    ],
  });
  const rename = (t: string) => (t === input.name ? blurred : t);
  return {
    ...graph,
    nodes: [conv, ...graph.nodes.map((n) => ({ ...n, inputs: n.inputs.map(rename) }))],
    initializers: [...graph.initializers, makeTensor(weightName, OnnxDataType.FLOAT, [channels, 1, k, k], kernel)],
  };
}

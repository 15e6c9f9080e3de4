/**
 * ONNX export of a trained ProtoPNet (fp32 head; the backbone keeps its own
 * precision, so an int8 ONNX backbone stays int8 up to the tap).
 *
 * One input, `image` (see backbone-graph.ts for its two formats), and three
 * outputs, N being the batch:
 *   logits        [N, C]        class scores (softmax gives probabilities)
 *   similarities  [N, m]        log((d+1)/(d+ε)) of each prototype's closest patch
 *   distances     [N, m, H, W]  squared latent distance of every patch to every
 *                               prototype, one H x W map per prototype (prototype-major,
 *                               shared/explain.ts DistanceMaps 'prototype-major')
 */
import { readFile } from 'node:fs/promises';
import { sha256Hex } from '@protoatlas/shared';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import * as ort from 'onnxruntime-node';
import { resolveWeights } from '../backbone/download.ts';
import type { LayersBackbone } from '../backbone/layers-model-backbone.ts';
import {
  decodeModel,
  encodeModel,
  makeGraph,
  makeModel,
  makeValueInfo,
  OnnxDataType,
  type OnnxDim,
  type OnnxValueInfo,
} from '../onnx/onnx-proto.ts';
import { pruneGraph, type OnnxCompute } from '../backbone/onnx-tap.ts';
import type { BackboneGraphEdits } from '../backbone/graph-edits.ts';
import type { PreprocessSpec } from '../backbone/types.ts';
import { writeFileAtomic } from '../core/atomic.ts';
import { resolveDataPath, resolveRepoPath } from '../core/data-path.ts';
import { loadModel } from '../model/model-file.ts';
import { buildBackbone } from '../model/prepare-data.ts';
import { importOnnxBackbone } from '../backbone/onnx-import.ts';
import { initBackend, type BackendPreference } from '../tf/backend.ts';
import {
  addImageInput,
  addLayersModelNodes,
  exportOpset,
  graphNames,
  imageInputSpec,
  renameInput,
  tapOnnxBackbone,
  withOpset,
  type ImageInputSpec,
  type InputFormat,
} from './backbone-graph.ts';
import { assertValidModel } from '../onnx/check-graph.ts';
import { foldBatchNorms, foldZeroPads } from './fold.ts';
import { GraphBuilder } from '../onnx/graph-builder.ts';
import { addHeadNodes, headExportWeights, irVersionFor, type HeadExportWeights } from './head-graph.ts';

export type BackboneSource =
  | { kind: 'layers'; model: LayersModel }
  /** An ONNX model (bytes of the .onnx file) tapped at `tap` ('auto' = input of the last global average pool). */
  | ({ kind: 'onnx'; bytes: Uint8Array; tap?: string; compute?: OnnxCompute } & BackboneGraphEdits);

export interface BuildOptions {
  /** Default 'nchw-normalized'. */
  input?: InputFormat;
  /** Opset of a converted tfjs backbone (default 13). ONNX backbones keep theirs, raised to 13 when older. */
  opset?: number;
}

export interface OutputSpec {
  name: string;
  shape: OnnxDim[];
}

export interface OnnxExport {
  bytes: Uint8Array;
  opset: number;
  input: ImageInputSpec;
  outputs: OutputSpec[];
  /** What happened to the backbone graph (folds, layer counts, quantised tap). */
  notes: string[];
}

/** Builds the whole model in memory (no files, no runtime). */
export function buildProtoPNetOnnx(
  source: BackboneSource,
  head: HeadExportWeights,
  preprocess: PreprocessSpec,
  opts: BuildOptions = {},
): OnnxExport {
  const spec = imageInputSpec(opts.input ?? 'nchw-normalized', preprocess);
  return source.kind === 'layers'
    ? fromLayers(source.model, head, spec, opts.opset ?? 13)
    : fromOnnx(source, head, spec);
}

/**
 * A tfjs backbone alone, as ONNX: `image` → `features` NCHW [N, D, H, W]. For
 * checking the layer conversion and timing the backbone apart from the head.
 */
export function buildLayersFeatureModel(
  model: LayersModel,
  preprocess: PreprocessSpec,
  opts: BuildOptions = {},
): OnnxExport {
  return fromLayers(model, null, imageInputSpec(opts.input ?? 'nchw-normalized', preprocess), opts.opset ?? 13);
}

function fromLayers(
  model: LayersModel,
  head: HeadExportWeights | null,
  spec: ImageInputSpec,
  opset: number,
): OnnxExport {
  const inShape = model.inputs[0].shape;
  if (inShape[1] !== spec.preprocess.size || inShape[2] !== spec.preprocess.size || inShape[3] !== 3) {
    throw new Error(
      `ONNX export: the tfjs model takes ${JSON.stringify(inShape)}, the preprocess spec says ${spec.preprocess.size}x${spec.preprocess.size}x3`,
    );
  }
  const b = new GraphBuilder(opset);
  const x = addImageInput(b, spec);
  const bb = addLayersModelNodes(b, model, x);
  let outputs: OnnxValueInfo[];
  if (head) {
    if (bb.channels !== head.inputChannels)
      throw new Error(
        `ONNX export: the backbone gives ${bb.channels} channels, the head expects ${head.inputChannels}`,
      );
    outputs = addHeadNodes(b, head, { features: bb.features, height: bb.height, width: bb.width });
  } else {
    const features = b.add('Identity', [bb.features], 'features', {}, { output: 'features' });
    outputs = [makeValueInfo(features, OnnxDataType.FLOAT, ['N', bb.channels, bb.height, bb.width])];
  }
  const keep = new Set(outputs.map((o) => o.name));
  const bn = foldBatchNorms(b, keep);
  const pads = foldZeroPads(b, keep);
  const { nodes, initializers } = b.encode();
  const graph = makeGraph({
    name: 'protopnet',
    nodes,
    initializers,
    inputs: [makeValueInfo(spec.name, OnnxDataType.FLOAT, spec.shape)],
    outputs,
  });
  const onnxModel = makeModel(graph, { '': opset }, irVersionFor(opset));
  assertValidModel(onnxModel);
  const layers = [...bb.layerCounts].map(([k, v]) => `${v} ${k}`).join(', ');
  return {
    bytes: encodeModel(onnxModel),
    opset,
    input: spec,
    outputs: outputSpecs(outputs),
    notes: [`tfjs layers: ${layers}`, `folded ${bn} BatchNormalization and ${pads} ZeroPadding2D into Conv`],
  };
}

function fromOnnx(
  source: Extract<BackboneSource, { kind: 'onnx' }>,
  head: HeadExportWeights,
  spec: ImageInputSpec,
): OnnxExport {
  const compute = source.compute ?? 'int8';
  const t = tapOnnxBackbone(source.bytes, source.tap ?? 'auto', compute, source);
  const opset = exportOpset(t);
  const origInput = t.model.graph.inputs.find((i) => i.name === t.input);
  const s = spec.preprocess.size;
  const shape = origInput?.shape;
  if (
    shape &&
    shape.length === 4 &&
    ((typeof shape[2] === 'number' && shape[2] !== s) ||
      (typeof shape[3] === 'number' && shape[3] !== s) ||
      (typeof shape[1] === 'number' && shape[1] !== 3))
  ) {
    throw new Error(`ONNX export: the backbone takes [${shape.join(', ')}], the preprocess spec says 3x${s}x${s}`);
  }
  let model = t.model;
  let input = t.input;
  const names = graphNames(model);
  if (input === spec.name) {
    // A backbone whose own input has the deployed input's name: its input moves aside.
    for (let i = 2; names.has(input); i++) input = `${t.input}_backbone${i > 2 ? `_${i}` : ''}`;
    model = renameInput(model, t.input, input, origInput?.shape ?? ['N', 3, s, s]);
    names.delete(t.input);
    names.add(input);
  }
  if (names.has(spec.name)) throw new Error(`ONNX export: the backbone already has a tensor named "${spec.name}"`);
  names.delete(input);
  const pre = new GraphBuilder(opset, names);
  if (spec.format === 'nchw-normalized') {
    model = renameInput(model, input, spec.name, spec.shape);
    pre.claim(spec.name);
  } else {
    // The adapter writes the backbone's own input tensor, which stops being a graph input.
    addImageInput(pre, spec, input);
  }
  const fs = t.featureShape;
  if (typeof fs?.[1] === 'number' && fs[1] !== head.inputChannels)
    throw new Error(`ONNX export: the tap gives ${fs[1]} channels, the head expects ${head.inputChannels}`);
  const headB = new GraphBuilder(opset, [...graphNames(model), ...pre.names()]);
  const outputs = addHeadNodes(headB, head, { features: t.features, height: fs?.[2] ?? 'H', width: fs?.[3] ?? 'W' });
  const a = pre.encode();
  const h = headB.encode();
  const g = model.graph;
  const graph = pruneGraph({
    ...g,
    name: 'protopnet',
    nodes: [...a.nodes, ...g.nodes, ...h.nodes],
    initializers: [...g.initializers, ...a.initializers, ...h.initializers],
    inputs:
      spec.format === 'nchw-normalized'
        ? g.inputs
        : [makeValueInfo(spec.name, OnnxDataType.FLOAT, spec.shape), ...g.inputs.filter((i) => i.name !== input)],
    outputs,
  });
  const out = withOpset({ ...model, graph }, opset, irVersionFor(opset));
  assertValidModel(out);
  return {
    bytes: encodeModel(out),
    opset,
    input: spec,
    outputs: outputSpecs(outputs),
    notes: [
      `onnx backbone tapped at ${t.features}${t.quantized ? ' (int8, dequantised)' : compute === 'float' ? ' (its int8 weights on float kernels)' : ''}, opset ${t.opset}${opset !== t.opset ? ` raised to ${opset}` : ''}`,
    ],
  };
}

function outputSpecs(outputs: { name: string; shape?: OnnxDim[] }[]): OutputSpec[] {
  return outputs.map((o) => ({ name: o.name, shape: o.shape ?? [] }));
}

/**
 * Runs the model once on a blank batch of one: proves onnxruntime accepts it,
 * and fills symbolic output sizes (e.g. an ONNX backbone's H and W) from the
 * real ones. Returns the updated export.
 */
export async function verifyExport(e: OnnxExport): Promise<OnnxExport & { sessionMs: number }> {
  const t0 = performance.now();
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(e.bytes, { logSeverityLevel: 3, intraOpNumThreads: 1 });
  } catch (err) {
    throw new Error(
      `ONNX export: onnxruntime rejects the exported model: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const sessionMs = performance.now() - t0;
  try {
    const size = e.input.shape.slice(1).reduce<number>((a, d) => a * (d as number), 1);
    const feed = new ort.Tensor('float32', new Float32Array(size), [1, ...(e.input.shape.slice(1) as number[])]);
    const res = await session.run({ [e.input.name]: feed }).catch((err: unknown) => {
      throw new Error(
        `ONNX export: the exported model fails on a blank image: ${err instanceof Error ? err.message : String(err)}`,
      );
    });
    const outputs = e.outputs.map((o) => {
      const dims = res[o.name]?.dims;
      if (!dims || dims.length !== o.shape.length)
        throw new Error(`ONNX export: output ${o.name} has dims [${dims}], expected rank ${o.shape.length}`);
      return { name: o.name, shape: o.shape.map((d, i) => (i === 0 ? d : typeof d === 'number' ? d : dims[i])) };
    });
    for (const o of outputs) {
      const dims = res[o.name].dims;
      o.shape.forEach((d, i) => {
        if (i > 0 && d !== dims[i])
          throw new Error(`ONNX export: output ${o.name} is [${dims}], the graph declares [${o.shape}]`);
      });
    }
    const changed = outputs.some((o, i) => o.shape.join() !== e.outputs[i].shape.join());
    const bytes = changed ? withOutputShapes(e.bytes, outputs) : e.bytes;
    return { ...e, bytes, outputs, sessionMs };
  } finally {
    await session.release();
  }
}

function withOutputShapes(bytes: Uint8Array, outputs: OutputSpec[]): Uint8Array {
  const model = decodeModel(bytes);
  const byName = new Map(outputs.map((o) => [o.name, o]));
  const graph = {
    ...model.graph,
    outputs: model.graph.outputs.map((v) =>
      byName.has(v.name) ? makeValueInfo(v.name, v.elemType ?? OnnxDataType.FLOAT, byName.get(v.name)!.shape) : v,
    ),
  };
  return encodeModel({ ...model, graph });
}

export interface ExportOnnxOptions extends BuildOptions {
  /** tfjs backend used to read the weights. Default 'cpu' (always available; export does no training maths). */
  backend?: BackendPreference;
  /** Skip the onnxruntime check run. Default false. */
  skipVerify?: boolean;
  /** Override the run's ONNX backbone compute (benchmarks: the int8 arithmetic of a 'float' run). */
  backboneCompute?: OnnxCompute;
}

export interface ExportResult {
  file: string;
  bytes: number;
  sha256: string;
  opset: number;
  input: ImageInputSpec;
  outputs: OutputSpec[];
  /** Manifest form (files.onnx.inputs / outputs). */
  manifest: {
    inputs: { name: string; shape: (number | string)[]; layout: string }[];
    outputs: { name: string; shape: (number | string)[] }[];
  };
  notes: string[];
  /** onnxruntime session creation in the check run (ms), when verified. */
  sessionMs: number | null;
}

/** Exports the trained model of a run dir (or model dir) to `outFile`. */
export async function exportOnnx(runDir: string, outFile: string, opts: ExportOnnxOptions = {}): Promise<ExportResult> {
  await initBackend(opts.backend ?? 'cpu', { quiet: true });
  const { config, head, backboneWeights } = await loadModel(runDir);
  let layers: LayersBackbone | null = null;
  try {
    const weights = headExportWeights(head);
    const b = config.backbone;
    let source: BackboneSource;
    let preprocess: PreprocessSpec;
    const cacheDir = resolveRepoPath(config.featureCacheDir);
    const onnxFile = (w: { path?: string; url?: string; sha256?: string }) =>
      resolveWeights({ path: w.path ? resolveDataPath(w.path) : undefined, url: w.url, sha256: w.sha256 }, cacheDir);
    if (b.kind === 'onnx' && b.trainable) {
      // Fine-tuned: the original file would drop the tuned weights, so the imported network
      // is written back as float ONNX ops with the run's weights.
      const imported = await importOnnxBackbone({
        path: await onnxFile(b),
        tap: b.tap,
        preprocess: b.preprocess,
        outputStride: b.outputStride,
        inputBlur: b.inputBlur,
      });
      try {
        // Only the top was tuned when trainFrom is set: the whole network, with the top's weights, is exported.
        if (b.trainFrom) imported.setPartWeights(b.trainFrom, backboneWeights);
        else imported.setWeights(backboneWeights);
        const tuned = imported.toOnnx();
        source = { kind: 'onnx', bytes: tuned.bytes, tap: tuned.tap };
      } finally {
        await imported.dispose();
      }
      preprocess = b.preprocess;
    } else if (b.kind === 'onnx') {
      source = {
        kind: 'onnx',
        bytes: await readFile(await onnxFile(b)),
        tap: b.tap,
        compute: opts.backboneCompute ?? b.compute,
        outputStride: b.outputStride,
        inputBlur: b.inputBlur,
      };
      preprocess = b.preprocess;
    } else {
      const built = await buildBackbone(config, { cacheDir, backboneWeights });
      layers = (built.trainable ?? built.frozen) as LayersBackbone;
      source = { kind: 'layers', model: layers.model };
      preprocess = layers.preprocess;
    }
    let e: OnnxExport & { sessionMs?: number } = buildProtoPNetOnnx(source, weights, preprocess, opts);
    if (!opts.skipVerify) e = await verifyExport(e);
    await writeFileAtomic(outFile, e.bytes);
    return {
      file: outFile,
      bytes: e.bytes.length,
      sha256: await sha256Hex(e.bytes),
      opset: e.opset,
      input: e.input,
      outputs: e.outputs,
      manifest: {
        inputs: [{ name: e.input.name, shape: e.input.shape.map(dimForManifest), layout: e.input.layout }],
        outputs: e.outputs.map((o) => ({ name: o.name, shape: o.shape.map(dimForManifest) })),
      },
      notes: e.notes,
      sessionMs: e.sessionMs ?? null,
    };
  } finally {
    head.dispose();
    if (layers) await (layers as { dispose(): unknown }).dispose();
  }
}

function dimForManifest(d: OnnxDim): number | string {
  return d === null ? '?' : d;
}

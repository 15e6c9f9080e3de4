/**
 * A tfjs layers model from disk (e.g. Teachable Machine's MobileNetV2 0.35),
 * cut at a named layer so that its output is the feature map. The cut layer
 * may sit inside nested models; the layers after it (someone else's head)
 * are dropped and their weights freed.
 */
import { createHash } from 'node:crypto';
import { loadLayersModel, model as makeModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { wrapLayersModel, type LayersBackbone } from './layers-model-backbone.ts';
import { filesIOHandler, readModelFiles } from './tfjs-files.ts';
import type { PreprocessSpec } from './types.ts';

export interface TfjsLayersBackboneOptions {
  modelJsonPath: string;
  /** A single weights file to use instead of the shards listed in model.json. */
  weightsPath?: string;
  /** Layer whose output is the feature map. Default 'out_relu' (MobileNetV2). */
  cutLayer?: string;
  /** Default: the model's input size, values scaled to [-1, 1] (mean = std = 0.5). */
  preprocess?: PreprocessSpec;
}

type Layerish = LayersModel['layers'][number];
type Container = LayersModel;

export async function loadTfjsLayersBackbone(opts: TfjsLayersBackboneOptions): Promise<LayersBackbone> {
  const cutName = opts.cutLayer ?? 'out_relu';
  const files = await readModelFiles(opts.modelJsonPath, opts.weightsPath);
  const full = await loadLayersModel(filesIOHandler(files));
  const found = findLayer(full, cutName);
  if (!found) {
    const names = allLayerNames(full);
    full.dispose();
    throw new Error(
      `tfjs model ${opts.modelJsonPath} has no layer "${cutName}" (last layers: ${names.slice(-5).join(', ')})`,
    );
  }
  const { container, layer } = found;
  const output = layer.output;
  if (Array.isArray(output)) throw new Error(`tfjs backbone: layer "${cutName}" has several outputs`);
  const cut = makeModel({ inputs: container.inputs, outputs: output, name: `${container.name}_cut_${cutName}` });
  disposeLayersOutside(full, new Set(cut.layers));

  const inShape = cut.inputs[0].shape;
  const size = inShape[1];
  if (inShape.length !== 4 || size === null || inShape[2] !== size || inShape[3] !== 3) {
    throw new Error(`tfjs backbone: expected a square RGB NHWC input, got ${JSON.stringify(inShape)}`);
  }
  const preprocess = opts.preprocess ?? { size, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  if (preprocess.size !== size)
    throw new Error(`tfjs backbone: preprocess.size ${preprocess.size} does not match the model input ${size}`);
  const hash = createHash('sha256')
    .update(files.jsonBytes)
    .update(new Uint8Array(files.weightData))
    .update(`\0cut=${cutName}`)
    .digest('hex');
  return wrapLayersModel(cut, {
    description: `tfjs-layers ${opts.modelJsonPath} cut at ${cutName}`,
    preprocess,
    hash,
    workerRecipe: { module: import.meta.url, factory: 'loadTfjsLayersBackbone', options: opts },
  });
}

function isContainer(l: Layerish | Container): l is Container {
  return Array.isArray((l as Container).layers) && Array.isArray((l as Container).inputs);
}

/** Depth-first search for a layer by name, returning the model that directly holds it. */
function findLayer(m: Container, name: string): { container: Container; layer: Layerish } | undefined {
  for (const l of m.layers) {
    if (l.name === name) return { container: m, layer: l };
    if (isContainer(l)) {
      const inner = findLayer(l, name);
      if (inner) return inner;
    }
  }
  return undefined;
}

function allLayerNames(m: Container): string[] {
  return m.layers.flatMap((l) => (isContainer(l) ? allLayerNames(l) : [l.name]));
}

/** Frees the weights of plain layers that the cut model does not use (the dropped head). */
function disposeLayersOutside(m: Container, keep: Set<Layerish>): void {
  for (const l of m.layers) {
    if (keep.has(l)) continue;
    if (isContainer(l)) disposeLayersOutside(l, keep);
    else if (l.weights.length > 0) l.dispose();
  }
}

/**
 * A small CNN trained from scratch (demo preset, tests): per stage a stride-2
 * conv3x3 + batch-norm + ReLU then a stride-1 conv3x3 + batch-norm + ReLU, so
 * a 56x56 input with three stages gives a 7x7 map. Kernels are He-normal from
 * the run's seeded Rng, so the same seed gives the same network everywhere.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { input, layers, model as makeModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { Rng } from '../core/rng.ts';
import { wrapLayersModel, type LayersBackbone } from './layers-model-backbone.ts';

export interface SmallCnnOptions {
  /** Square input side, e.g. 56 (→ 7x7 with three stages) or 64 (→ 8x8). */
  inputSize: number;
  /** Output channels of each stage, e.g. [32, 64, 128]; each stage halves the resolution. */
  channels: number[];
  seed: number;
  /**
   * Convolutions per stage: 2 (stride-2 then stride-1, receptive field 43 px at 56)
   * or 1 (stride-2 only, 15 px): smaller fields make prototypes point at parts.
   */
  convsPerStage?: 1 | 2;
}

export function createSmallCnn(opts: SmallCnnOptions): LayersBackbone {
  if (opts.channels.length === 0) throw new Error('small CNN: channels must list at least one stage');
  const x = input({ shape: [opts.inputSize, opts.inputSize, 3], name: 'cnn_input' });
  let h: SymbolicTensor = x;
  opts.channels.forEach((c, s) => {
    for (let j = 0; j < (opts.convsPerStage ?? 2); j++) {
      const conv = layers.conv2d({
        filters: c,
        kernelSize: 3,
        strides: j === 0 ? 2 : 1,
        padding: 'same',
        useBias: false,
        kernelInitializer: 'zeros', // replaced below by seeded values
        name: `cnn_s${s}_conv${j}`,
      });
      h = conv.apply(h) as SymbolicTensor;
      h = layers.batchNormalization({ name: `cnn_s${s}_bn${j}` }).apply(h) as SymbolicTensor;
      h = layers.reLU({ name: `cnn_s${s}_relu${j}` }).apply(h) as SymbolicTensor;
    }
  });
  const net = makeModel({ inputs: x, outputs: h, name: 'small_cnn' });
  initKernels(net.weights, opts.seed);

  const arch = JSON.stringify({
    kind: 'small-cnn',
    inputSize: opts.inputSize,
    channels: opts.channels,
    ...(opts.convsPerStage === 1 ? { convsPerStage: 1 } : {}),
  });
  const backbone = wrapLayersModel(net, {
    description: `small CNN ${opts.inputSize}px channels [${opts.channels.join(', ')}]${opts.convsPerStage === 1 ? ' (1 conv per stage)' : ''} seed ${opts.seed}`,
    preprocess: { size: opts.inputSize, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    // The weights change in training, so the hash is taken from their current values.
    hash: () => weightsHash(arch, net.weights),
    workerRecipe: { module: import.meta.url, factory: 'createSmallCnn', options: opts },
  });
  return backbone;
}

/** He-normal kernels (std = sqrt(2 / fan_in)) drawn from the seeded Rng, in layer order. */
function initKernels(
  weights: { originalName: string; shape: (number | null)[]; write(t: tf.Tensor): unknown }[],
  seed: number,
): void {
  const rng = new Rng(seed);
  for (const w of weights) {
    if (!w.originalName.endsWith('/kernel')) continue;
    const shape = w.shape as number[];
    const fanIn = shape[0] * shape[1] * shape[2];
    const std = Math.sqrt(2 / fanIn);
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) values[i] = rng.normal() * std;
    const t = tf.tensor(values, shape, 'float32');
    w.write(t);
    t.dispose();
  }
}

function weightsHash(arch: string, weights: { originalName: string; read(): tf.Tensor }[]): string {
  const h = createHash('sha256').update(arch);
  for (const w of weights) {
    const data = w.read().dataSync() as Float32Array;
    h.update(w.originalName).update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digest('hex');
}

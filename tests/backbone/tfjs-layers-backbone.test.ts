import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  initializers,
  input,
  layers,
  model as makeModel,
  sequential,
  type LayersModel,
  type SymbolicTensor,
} from '@tensorflow/tfjs-layers';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dirSaveHandler } from '../../trainer/src/backbone/tfjs-files.ts';
import { loadTfjsLayersBackbone } from '../../trainer/src/backbone/tfjs-layers-backbone.ts';
import { HAS_TEACHABLE, NO_DATA_NOTE, TEACHABLE_JSON, cleanup, tempDir, testValues } from './helpers.ts';

let dir: string;
let reference: LayersModel;

/** Like Teachable Machine's file: a Sequential holding a functional base model, then a head. */
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await tempDir('tfjs');
  const x = input({ shape: [8, 8, 3], name: 'base_input' });
  let h = layers
    .conv2d({
      filters: 4,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      name: 'c1',
      kernelInitializer: initializers.glorotUniform({ seed: 1 }),
    })
    .apply(x) as SymbolicTensor;
  h = layers.batchNormalization({ name: 'bn1' }).apply(h) as SymbolicTensor;
  h = layers.reLU({ name: 'out_relu' }).apply(h) as SymbolicTensor;
  const tail = layers.conv2d({ filters: 2, kernelSize: 1, name: 'c2' }).apply(h) as SymbolicTensor;
  const base = makeModel({ inputs: x, outputs: tail, name: 'base' });
  const full = sequential({
    name: 'outer',
    layers: [base, layers.globalAveragePooling2d({ name: 'gap' }), layers.dense({ units: 3, name: 'head' })],
  });
  await full.save(dirSaveHandler(join(dir, 'm')));
  reference = makeModel({ inputs: base.inputs, outputs: base.getLayer('out_relu').output as SymbolicTensor });
});
afterAll(() => cleanup(dir));

describe('loadTfjsLayersBackbone', () => {
  it('cuts a nested model at out_relu and matches the original layer output', async () => {
    const bb = await loadTfjsLayersBackbone({ modelJsonPath: join(dir, 'm', 'model.json') });
    expect(bb.featureShape).toEqual([4, 4, 4]);
    expect(bb.preprocess).toEqual({ size: 8, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    const n = 3;
    const x = testValues(n * 8 * 8 * 3, 1);
    const got = await bb.extract(x, n);
    const want = tf.tidy(() => (reference.predict(tf.tensor4d(x, [n, 8, 8, 3])) as tf.Tensor).dataSync());
    expect(got.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
    // The head was dropped: only the base's weights up to out_relu remain.
    expect([...bb.getWeights().keys()].sort()).toEqual(
      ['bn1/beta', 'bn1/gamma', 'bn1/moving_mean', 'bn1/moving_variance', 'c1/kernel', 'c1/bias'].sort(),
    );
    expect(bb.trainableVariables()).toHaveLength(4);
    await bb.dispose();
  });

  it('is trainable through apply and restores weights', async () => {
    const bb = await loadTfjsLayersBackbone({ modelJsonPath: join(dir, 'm', 'model.json') });
    const w = bb.getWeights();
    const x = tf.tensor4d(testValues(2 * 8 * 8 * 3, 1), [2, 8, 8, 3]);
    const opt = tf.train.sgd(0.5);
    opt.minimize(() => tf.mean(bb.apply(x, true)) as tf.Scalar, false, bb.trainableVariables());
    expect(bb.getWeights().get('c1/kernel')!.data).not.toEqual(w.get('c1/kernel')!.data);
    bb.setWeights(w);
    expect(bb.getWeights().get('c1/kernel')!.data).toEqual(w.get('c1/kernel')!.data);
    x.dispose();
    opt.dispose();
    await bb.dispose();
  });

  it('hashes files and cut layer', async () => {
    const p = join(dir, 'm', 'model.json');
    const a = await loadTfjsLayersBackbone({ modelJsonPath: p });
    const b = await loadTfjsLayersBackbone({ modelJsonPath: p, cutLayer: 'out_relu' });
    const c = await loadTfjsLayersBackbone({ modelJsonPath: p, cutLayer: 'bn1' });
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(a.hash).toBe(b.hash);
    expect(c.hash).not.toBe(a.hash);
    await Promise.all([a.dispose(), b.dispose(), c.dispose()]);
  });

  it('names a missing layer and missing files', async () => {
    await expect(
      loadTfjsLayersBackbone({ modelJsonPath: join(dir, 'm', 'model.json'), cutLayer: 'block_99' }),
    ).rejects.toThrow(/no layer "block_99"/);
    await expect(loadTfjsLayersBackbone({ modelJsonPath: join(dir, 'nope', 'model.json') })).rejects.toThrow(
      /nope\/model\.json/,
    );
    await expect(
      loadTfjsLayersBackbone({ modelJsonPath: join(dir, 'm', 'model.json'), weightsPath: join(dir, 'gone.bin') }),
    ).rejects.toThrow(/gone\.bin/);
  });

  it('loads the real Teachable Machine MobileNetV2 0.35 cut at out_relu', async (ctx) => {
    ctx.skip(!HAS_TEACHABLE, NO_DATA_NOTE);
    const bb = await loadTfjsLayersBackbone({ modelJsonPath: TEACHABLE_JSON });
    try {
      expect(bb.featureShape).toEqual([7, 7, 1280]);
      expect(bb.preprocess.size).toBe(224);
      const f = await bb.extract(testValues(224 * 224 * 3, 1), 1);
      expect(f.length).toBe(7 * 7 * 1280);
      expect(f.every((v) => v >= 0 && v <= 6)).toBe(true); // ReLU6
      expect(f.some((v) => v > 0)).toBe(true);
    } finally {
      await bb.dispose();
    }
  });
});

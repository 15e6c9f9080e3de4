/**
 * The wasm training kernels against tfjs-backend-cpu (the reference), called
 * directly and through tf.grads, over strides, paddings, odd sizes, channel
 * multipliers and batches; plus a finite-difference check on small cases.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { initBackend } from '../../trainer/src/tf/backend.ts';
import { scratchLimit } from '../../trainer/src/tf/kernels/conv-geometry.ts';
import { MISSING_WASM_KERNELS, REPLACED_WASM_KERNELS } from '../../trainer/src/tf/wasm-grad-kernels.ts';
import { randn, relMaxDiff, runOn } from './helpers.ts';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  x: Shape4;
  filter: Shape4;
  strides: number | [number, number];
  pad: Pad;
}

const TOL = 1e-4;

beforeAll(async () => {
  await initBackend('wasm', { quiet: true });
});

const defaultScratch = scratchLimit.floats;
afterEach(() => {
  scratchLimit.floats = defaultScratch;
});

function outShape(c: ConvCase, depthwise: boolean): Shape4 {
  const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad, undefined, depthwise);
  return info.outShape;
}

function name(c: ConvCase): string {
  const pad = typeof c.pad === 'string' ? c.pad : `explicit${JSON.stringify(c.pad.slice(1, 3))}`;
  return `x${c.x.join('x')} f${c.filter.join('x')} s${c.strides} ${pad}`;
}

/** Runs a kernel on cpu and on wasm with identical inputs; returns the relative max diff. */
async function compareKernel(
  kernel: string,
  inputs: Record<string, { shape: number[]; values: Float32Array }>,
  attrs: NamedAttrMap,
): Promise<number> {
  const run = () => {
    const ts: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(inputs)) ts[k] = tf.tensor(v.values, v.shape);
    return tf.engine().runKernel(kernel, ts, attrs) as tf.Tensor;
  };
  const [ref] = await runOn('cpu', run);
  const [got] = await runOn('wasm', run);
  return relMaxDiff(got, ref);
}

const CONV_CASES: ConvCase[] = [
  { x: [2, 7, 7, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { x: [2, 7, 7, 3], filter: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { x: [3, 8, 9, 5], filter: [3, 3, 5, 6], strides: 2, pad: 'valid' },
  { x: [2, 9, 8, 4], filter: [2, 3, 4, 5], strides: [2, 1], pad: 'same' },
  { x: [1, 6, 6, 4], filter: [3, 3, 4, 2], strides: 2, pad: 'same' },
  { x: [2, 11, 10, 3], filter: [5, 5, 3, 4], strides: 2, pad: 'same' },
  { x: [2, 5, 5, 8], filter: [1, 1, 8, 6], strides: 1, pad: 'same' },
  { x: [2, 7, 7, 8], filter: [1, 1, 8, 6], strides: 2, pad: 'valid' },
  { x: [3, 5, 6, 4], filter: [1, 1, 4, 9], strides: 1, pad: 'valid' },
  {
    x: [2, 5, 6, 4],
    filter: [1, 1, 4, 9],
    strides: 1,
    pad: [
      [0, 0],
      [0, 1],
      [0, 2],
      [0, 0],
    ],
  },
  {
    x: [2, 7, 6, 3],
    filter: [3, 3, 3, 4],
    strides: 1,
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  },
  { x: [4, 6, 6, 5], filter: [3, 3, 5, 7], strides: 1, pad: 'valid' },
];

const DEPTHWISE_CASES: ConvCase[] = [
  { x: [2, 7, 7, 4], filter: [3, 3, 4, 1], strides: 1, pad: 'same' },
  { x: [2, 8, 8, 4], filter: [3, 3, 4, 1], strides: 2, pad: 'same' },
  { x: [3, 9, 7, 3], filter: [3, 3, 3, 1], strides: 2, pad: 'valid' },
  { x: [2, 7, 7, 4], filter: [3, 3, 4, 2], strides: 1, pad: 'valid' },
  { x: [2, 9, 9, 3], filter: [3, 3, 3, 2], strides: 2, pad: 'same' },
  { x: [2, 11, 10, 3], filter: [5, 5, 3, 2], strides: 2, pad: 'valid' },
  { x: [1, 6, 5, 5], filter: [3, 3, 5, 1], strides: [1, 2], pad: 'same' },
  {
    x: [2, 7, 6, 2],
    filter: [3, 3, 2, 2],
    strides: 1,
    pad: [
      [0, 0],
      [2, 1],
      [1, 0],
      [0, 0],
    ],
  },
];

describe('registration', () => {
  it('registers every missing kernel and the replacements for wasm', () => {
    for (const k of MISSING_WASM_KERNELS) {
      expect(tf.getKernel(k.kernelName, 'wasm')?.kernelFunc).toBe(k.kernelFunc);
    }
    for (const o of REPLACED_WASM_KERNELS) {
      // Stock wasm kernels all bind C functions in a setupFunc; ours have none.
      const k = tf.getKernel(o.kernelName, 'wasm');
      expect(k).toBeDefined();
      expect(k?.setupFunc).toBeUndefined();
    }
    expect(MISSING_WASM_KERNELS.map((k) => k.kernelName).sort()).toEqual([
      'Conv2DBackpropFilter',
      'DepthwiseConv2dNativeBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput',
      'UnsortedSegmentSum',
    ]);
  });
});

describe('Conv2DBackpropFilter / Conv2DBackpropInput vs cpu', () => {
  for (const c of CONV_CASES) {
    it(name(c), async () => {
      const dyShape = outShape(c, false);
      const x = { shape: c.x, values: randn(c.x, 1) };
      const filter = { shape: c.filter, values: randn(c.filter, 2) };
      const dy = { shape: dyShape, values: randn(dyShape, 3) };
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC' } as unknown as NamedAttrMap;
      expect(await compareKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: c.filter })).toBeLessThan(
        TOL,
      );
      expect(await compareKernel('Conv2DBackpropInput', { dy, filter }, { ...attrs, inputShape: c.x })).toBeLessThan(
        TOL,
      );
    });
  }

  it('gives the same results when the batch is split into chunks', async () => {
    scratchLimit.floats = 1; // one image per chunk
    for (const c of [CONV_CASES[2], CONV_CASES[3], CONV_CASES[6], CONV_CASES[8]]) {
      const dyShape = outShape(c, false);
      const x = { shape: c.x, values: randn(c.x, 4) };
      const filter = { shape: c.filter, values: randn(c.filter, 5) };
      const dy = { shape: dyShape, values: randn(dyShape, 6) };
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC' } as unknown as NamedAttrMap;
      expect(await compareKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: c.filter })).toBeLessThan(
        TOL,
      );
      expect(await compareKernel('Conv2DBackpropInput', { dy, filter }, { ...attrs, inputShape: c.x })).toBeLessThan(
        TOL,
      );
    }
  });

  it('matches through tf.grads of conv2d', async () => {
    for (const c of CONV_CASES.slice(0, 5)) {
      const xv = randn(c.x, 7);
      const fv = randn(c.filter, 8);
      const f = () => {
        const x = tf.tensor4d(xv, c.x);
        const w = tf.tensor4d(fv, c.filter);
        const loss = (a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad)));
        return tf.grads(loss)([x, w]);
      };
      const ref = await runOn('cpu', f);
      const got = await runOn('wasm', f);
      for (let i = 0; i < ref.length; i++) expect(relMaxDiff(got[i], ref[i])).toBeLessThan(TOL);
    }
  });
});

describe('DepthwiseConv2dNativeBackpropFilter / Input vs cpu', () => {
  for (const c of DEPTHWISE_CASES) {
    it(name(c), async () => {
      const dyShape = outShape(c, true);
      const x = { shape: c.x, values: randn(c.x, 11) };
      const filter = { shape: c.filter, values: randn(c.filter, 12) };
      const dy = { shape: dyShape, values: randn(dyShape, 13) };
      const attrs = { strides: c.strides, pad: c.pad, dilations: 1 } as unknown as NamedAttrMap;
      expect(
        await compareKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: c.filter }),
      ).toBeLessThan(TOL);
      expect(
        await compareKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter }, { ...attrs, inputShape: c.x }),
      ).toBeLessThan(TOL);
    });
  }

  it('matches through tf.grads of depthwiseConv2d', async () => {
    for (const c of DEPTHWISE_CASES.slice(0, 5)) {
      const xv = randn(c.x, 14);
      const fv = randn(c.filter, 15);
      const f = () => {
        const x = tf.tensor4d(xv, c.x);
        const w = tf.tensor4d(fv, c.filter);
        const loss = (a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.square(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad as 'same')));
        return tf.grads(loss)([x, w]);
      };
      const ref = await runOn('cpu', f);
      const got = await runOn('wasm', f);
      for (let i = 0; i < ref.length; i++) expect(relMaxDiff(got[i], ref[i])).toBeLessThan(TOL);
    }
  });
});

describe('UnsortedSegmentSum vs cpu', () => {
  it('sums rows by segment and drops out-of-range ids', async () => {
    const ids = [0, 2, 2, 1, 4, 0, -1];
    const xv = randn([7, 3, 2], 21);
    const run = () => tf.unsortedSegmentSum(tf.tensor3d(xv, [7, 3, 2]), tf.tensor1d(ids, 'int32'), 4);
    const [ref] = await runOn('cpu', run);
    const [got] = await runOn('wasm', run);
    expect(relMaxDiff(got, ref)).toBeLessThan(TOL);
  });

  it('matches through tf.grads of gather', async () => {
    const tv = randn([5, 4], 22);
    const f = () => {
      const table = tf.tensor2d(tv, [5, 4]);
      const idx = tf.tensor1d([3, 0, 3, 1, 3], 'int32');
      return tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.gather(t, idx))))(table);
    };
    const [ref] = await runOn('cpu', f);
    const [got] = await runOn('wasm', f);
    expect(relMaxDiff(got, ref)).toBeLessThan(TOL);
  });
});

describe('replaced kernels (Tile, Sum, Mean, Conv2DBackpropInput fallback) vs cpu', () => {
  async function same(fn: () => tf.Tensor): Promise<void> {
    const [ref] = await runOn('cpu', fn);
    const [got] = await runOn('wasm', fn);
    expect(relMaxDiff(got, ref)).toBeLessThan(TOL);
    await tf.setBackend('cpu');
    const refT = tf.tidy(fn);
    await tf.setBackend('wasm');
    const gotT = tf.tidy(fn);
    expect(gotT.shape).toEqual(refT.shape);
    expect(gotT.dtype).toBe(refT.dtype);
    tf.dispose([refT, gotT]);
  }

  it('Tile: ranks 1–5, float32 / int32 / bool, big and small blocks', async () => {
    const v = randn([2 * 3 * 4 * 5], 40);
    await same(() => tf.tile(tf.tensor1d(v.slice(0, 5)), [7]));
    await same(() => tf.tile(tf.tensor2d(v.slice(0, 12), [3, 4]), [2, 3]));
    await same(() => tf.tile(tf.tensor4d(v.slice(0, 8), [1, 1, 1, 8]), [4, 9, 7, 1]));
    await same(() => tf.tile(tf.tensor4d(v.slice(0, 30), [2, 3, 5, 1]), [1, 2, 1, 40]));
    await same(() => tf.tile(tf.tensor(v, [2, 3, 4, 5, 1]), [2, 1, 3, 1, 2]));
    await same(() => tf.tile(tf.tensor2d([1, -2, 3, 4], [2, 2], 'int32'), [3, 2]));
    await same(() => tf.tile(tf.tensor2d([1, 0, 0, 1, 1, 0], [2, 3], 'bool'), [2, 5]));
    await same(() => tf.tile(tf.tensor2d(v.slice(0, 6), [2, 3]), [1, 1]));
  });

  it('Sum / Mean over leading, middle, negative and fallback axes', async () => {
    const shape = [3, 4, 5, 6];
    const v = randn(shape, 41);
    const x = () => tf.tensor4d(v, shape as Shape4);
    for (const axis of [[0, 1, 2], [1, 2], [0], [1], [-3, -2], [2], [3], [2, 3], [0, 1, 2, 3], [0, 2]]) {
      for (const keepDims of [false, true]) {
        await same(() => tf.sum(x(), axis, keepDims));
        await same(() => tf.mean(x(), axis, keepDims));
      }
    }
    await same(() => tf.sum(tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2], 'int32'), [0]));
    await same(() => tf.mean(tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2], 'int32'), [1]));
  });

  it('comparisons: scalar on either side, same shape, int32, NaN, and stock broadcasts', async () => {
    const v = randn([4, 5], 44);
    v[3] = 0.5;
    v[7] = NaN;
    const ops = [tf.less, tf.lessEqual, tf.greater, tf.greaterEqual, tf.equal, tf.notEqual];
    for (const op of ops) {
      await same(() => tf.cast(op(tf.tensor2d(v, [4, 5]), tf.scalar(0.5)), 'float32'));
      await same(() => tf.cast(op(tf.scalar(0.5), tf.tensor2d(v, [4, 5])), 'float32'));
      await same(() => tf.cast(op(tf.tensor2d(v, [4, 5]), tf.tensor2d(randn([4, 5], 45), [4, 5])), 'float32'));
      await same(() => tf.cast(op(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([3, 2, 1], 'int32')), 'float32'));
      await same(() => tf.cast(op(tf.tensor2d(v, [4, 5]), tf.tensor1d(v.slice(0, 5))), 'float32'));
      await same(() => tf.cast(op(tf.tensor2d(v, [4, 5]), tf.tensor3d([0.5], [1, 1, 1])), 'float32'));
    }
  });

  it('Conv2DBackpropInput hands NCHW to the stock kernel', async () => {
    const xShape: Shape4 = [2, 3, 7, 6];
    const filterShape: Shape4 = [3, 3, 3, 4];
    const dyShape = [2, 4, 4, 3];
    const dy = randn(dyShape, 42);
    const w = randn(filterShape, 43);
    const attrs = { strides: 2, pad: 'same', dataFormat: 'NCHW', inputShape: xShape } as unknown as NamedAttrMap;
    await same(
      () =>
        tf
          .engine()
          .runKernel(
            'Conv2DBackpropInput',
            { dy: tf.tensor(dy, dyShape), filter: tf.tensor(w, filterShape) },
            attrs,
          ) as tf.Tensor,
    );
  });
});

describe('memory', () => {
  it('kernels free all their scratch tensors on the wasm heap', async () => {
    await tf.setBackend('wasm');
    const run = () => {
      for (const c of [...CONV_CASES, ...DEPTHWISE_CASES.map((d) => ({ ...d, dw: true }))]) {
        const dw = 'dw' in c;
        tf.tidy(() => {
          const x = tf.tensor(randn(c.x, 50), c.x);
          const w = tf.tensor(randn(c.filter, 51), c.filter);
          const f = (a: tf.Tensor, b: tf.Tensor) =>
            tf.sum(
              dw
                ? tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad as 'same')
                : tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad),
            );
          tf.grads(f)([x, w]);
        });
      }
      tf.tidy(() => {
        tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, tf.tensor1d([1, 1, 0], 'int32'))))(tf.ones([3, 2]));
        tf.sum(tf.tile(tf.ones([1, 1, 3]), [2, 4, 1]), [0, 1]);
      });
    };
    run(); // warm up lazily created state
    scratchLimit.floats = 1;
    run();
    const before = tf.engine().backend.numDataIds();
    const tensorsBefore = tf.memory().numTensors;
    run();
    expect(tf.engine().backend.numDataIds()).toBe(before);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});

/**
 * Central differences of L = Σ R ⊙ conv(x, w). L is linear in each argument,
 * so the difference quotient is exact up to float32 rounding of L.
 */
describe('finite differences on wasm', () => {
  async function check(depthwise: boolean, c: ConvCase): Promise<void> {
    await tf.setBackend('wasm');
    const yShape = outShape(c, depthwise);
    const xv = randn(c.x, 31);
    const wv = randn(c.filter, 32);
    const rv = randn(yShape, 33);
    const conv = (x: tf.Tensor, w: tf.Tensor) =>
      depthwise
        ? tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad as 'same')
        : tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad);
    const loss = (x: Float32Array, w: Float32Array): number =>
      tf.tidy(
        () => tf.sum(tf.mul(tf.tensor(rv, yShape), conv(tf.tensor(x, c.x), tf.tensor(w, c.filter)))).dataSync()[0],
      );
    const [gx, gw] = tf.tidy(() =>
      tf
        .grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(tf.tensor(rv, yShape), conv(x, w))))([
          tf.tensor(xv, c.x),
          tf.tensor(wv, c.filter),
        ])
        .map((g) => tf.keep(g)),
    );
    const analytic = [gx.dataSync(), gw.dataSync()];
    tf.dispose([gx, gw]);
    const eps = 1e-2;
    for (const [arg, base] of [xv, wv].entries()) {
      const numeric = new Float32Array(base.length);
      for (let i = 0; i < base.length; i++) {
        const plus = Float32Array.from(base);
        const minus = Float32Array.from(base);
        plus[i] += eps;
        minus[i] -= eps;
        numeric[i] =
          arg === 0 ? (loss(plus, wv) - loss(minus, wv)) / (2 * eps) : (loss(xv, plus) - loss(xv, minus)) / (2 * eps);
      }
      expect(relMaxDiff(analytic[arg], numeric)).toBeLessThan(2e-3);
    }
  }

  it('conv2d, stride 2, same', async () => {
    await check(false, { x: [2, 5, 5, 2], filter: [3, 3, 2, 3], strides: 2, pad: 'same' });
  });

  it('depthwiseConv2d, multiplier 2, stride 2, same', async () => {
    await check(true, { x: [2, 5, 5, 2], filter: [3, 3, 2, 2], strides: 2, pad: 'same' });
  });
});

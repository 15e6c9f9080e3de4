/**
 * Milliseconds per call of forward convs vs their backprop kernels on
 * realistic training shapes, wasm (with our kernels) vs cpu.
 *
 *   node_modules/.bin/node trainer/bench/wasm-kernels.ts [--no-cpu] [--reps N]
 *
 * The cpu half takes several minutes (tfjs-backend-cpu's Conv2DBackpropFilter
 * needs seconds to minutes per call at these shapes); --no-cpu skips it.
 * Times are the best of N calls in process CPU time (user+system), which on
 * one thread equals wall time on an idle machine but is not inflated when
 * other processes compete for the cores.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, NamedAttrMap, Tensor } from '@tensorflow/tfjs-core';
import { initBackend } from '../src/tf/backend.ts';
import { Rng } from '../src/core/rng.ts';
import { seededNormal } from '../src/tf/tensor-utils.ts';
import { answerHelp } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/wasm-kernels.ts [--no-cpu] [--reps N]

Milliseconds (process CPU time, best of N) per call of forward convs and their backprop kernels, wasm against cpu.`,
);

interface Case {
  label: string;
  depthwise: boolean;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number;
  pad: 'same' | 'valid';
}

const CASES: Case[] = [
  {
    label: 'conv 3x3 s2  32x56x56x3 -> 32',
    depthwise: false,
    x: [32, 56, 56, 3],
    filter: [3, 3, 3, 32],
    strides: 2,
    pad: 'same',
  },
  {
    label: 'conv 3x3 s1  32x28x28x32 -> 32',
    depthwise: false,
    x: [32, 28, 28, 32],
    filter: [3, 3, 32, 32],
    strides: 1,
    pad: 'same',
  },
  {
    label: 'conv 1x1     32x28x28x32 -> 64',
    depthwise: false,
    x: [32, 28, 28, 32],
    filter: [1, 1, 32, 64],
    strides: 1,
    pad: 'same',
  },
  {
    label: 'conv 1x1     32x7x7x1280 -> 128',
    depthwise: false,
    x: [32, 7, 7, 1280],
    filter: [1, 1, 1280, 128],
    strides: 1,
    pad: 'valid',
  },
  {
    label: 'dw 3x3 s1    32x28x28x32',
    depthwise: true,
    x: [32, 28, 28, 32],
    filter: [3, 3, 32, 1],
    strides: 1,
    pad: 'same',
  },
  {
    label: 'dw 3x3 s2    32x56x56x32',
    depthwise: true,
    x: [32, 56, 56, 32],
    filter: [3, 3, 32, 1],
    strides: 2,
    pad: 'same',
  },
  {
    label: 'dw 3x3 s1    32x14x14x96 x2',
    depthwise: true,
    x: [32, 14, 14, 96],
    filter: [3, 3, 96, 2],
    strides: 1,
    pad: 'same',
  },
];

const args = process.argv.slice(2);
const withCpu = !args.includes('--no-cpu');
const repsArg = args.indexOf('--reps');
const REPS = repsArg >= 0 ? Number(args[repsArg + 1]) : 5;

/**
 * Best CPU ms of `reps` calls after one warm-up; the result is read back each
 * time. `fresh` (untimed) makes new input tensors before each call: the wasm
 * backend caches XNNPACK operators (packed weights) per tensor, and in
 * training every dy and every updated filter is a new tensor.
 */
function timeFresh(fn: () => Tensor, reps: number, fresh: () => void = () => {}): number {
  let best = Infinity;
  // cpu runs once, unwarmed: its Conv2DBackpropFilter takes seconds to minutes.
  const warmup = tf.getBackend() === 'cpu' ? 0 : 1;
  for (let i = 1 - warmup; i <= reps; i++) {
    fresh();
    const t0 = process.cpuUsage();
    const out = fn();
    out.dataSync();
    const used = process.cpuUsage(t0);
    out.dispose();
    if (i > 0) best = Math.min(best, (used.user + used.system) / 1000);
  }
  return best;
}

function run(kernel: string, inputs: Record<string, Tensor>, attrs: NamedAttrMap): Tensor {
  return tf.engine().runKernel(kernel, inputs, attrs) as Tensor;
}

function benchCase(c: Case, reps: number): Record<string, number> {
  const rng = new Rng(1);
  const x0 = seededNormal(c.x, rng);
  const filter0 = seededNormal(c.filter, rng, 0.1);
  const y = c.depthwise
    ? tf.depthwiseConv2d(x0 as tf.Tensor4D, filter0 as tf.Tensor4D, c.strides, c.pad)
    : tf.conv2d(x0 as tf.Tensor4D, filter0 as tf.Tensor4D, c.strides, c.pad);
  const dy0 = seededNormal(y.shape, rng);
  y.dispose();
  let x = tf.clone(x0);
  let filter = tf.clone(filter0);
  let dy = tf.clone(dy0);
  const fresh = () => {
    tf.dispose([x, filter, dy]);
    [x, filter, dy] = [tf.clone(x0), tf.clone(filter0), tf.clone(dy0)];
  };
  const time = (fn: () => Tensor, reps: number) => timeFresh(fn, reps, fresh);
  const common = { strides: c.strides, pad: c.pad, dimRoundingMode: undefined } as unknown as NamedAttrMap;
  const r: Record<string, number> = {};
  if (c.depthwise) {
    const a = { ...common, dilations: 1 } as NamedAttrMap;
    r.forward = time(() => run('DepthwiseConv2dNative', { x, filter }, a), reps);
    r.filter = time(() => run('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...a, filterShape: c.filter }), reps);
    r.input = time(() => run('DepthwiseConv2dNativeBackpropInput', { dy, filter }, { ...a, inputShape: c.x }), reps);
  } else {
    const a = { ...common, dataFormat: 'NHWC' } as NamedAttrMap;
    r.forward = time(() => run('Conv2D', { x, filter }, { ...a, dilations: 1 }), reps);
    r.filter = time(() => run('Conv2DBackpropFilter', { x, dy }, { ...a, filterShape: c.filter }), reps);
    r.input = time(() => run('Conv2DBackpropInput', { dy, filter }, { ...a, inputShape: c.x }), reps);
    if (stockInput && tf.getBackend() === 'wasm') {
      // The kernel tfjs-backend-wasm ships (replaced by ours), for comparison.
      const fn = stockInput.kernelFunc;
      const backend = tf.backend();
      r.stockInput = time(() => {
        const info = fn({ inputs: { dy, filter }, backend, attrs: { ...a, inputShape: c.x } }) as tf.TensorInfo;
        return tf.engine().makeTensorFromTensorInfo(info);
      }, reps);
    }
  }
  tf.dispose([x, filter, dy, x0, filter0, dy0]);
  return r;
}

/** One Adam step of a small MobileNet-style CNN on 56×56 inputs (batch 32), end to end. */
function benchTrainStep(reps: number): number {
  const rng = new Rng(2);
  const shapes: Record<string, number[]> = {
    c1: [3, 3, 3, 32],
    g1: [32],
    b1: [32],
    d1: [3, 3, 32, 1],
    p1: [1, 1, 32, 64],
    d2: [3, 3, 64, 1],
    p2: [1, 1, 64, 128],
    fc: [128, 10],
    fb: [10],
  };
  const v: Record<string, tf.Variable> = {};
  for (const [k, shape] of Object.entries(shapes)) {
    const init =
      k === 'g1' ? tf.ones(shape) : k === 'b1' || k === 'fb' ? tf.zeros(shape) : seededNormal(shape, rng, 0.1);
    v[k] = tf.variable(init);
    init.dispose();
  }
  const x = seededNormal([32, 56, 56, 3], rng) as tf.Tensor4D;
  const labels = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: 32 }, (_, i) => i % 10),
      'int32',
    ),
    10,
  );
  const loss = (): tf.Scalar => {
    let h = tf.conv2d(x, v.c1 as tf.Tensor4D, 2, 'same');
    const { mean, variance } = tf.moments(h, [0, 1, 2]);
    h = tf.relu6(tf.batchNorm(h, mean, variance, v.b1 as tf.Tensor1D, v.g1 as tf.Tensor1D, 1e-3)) as tf.Tensor4D;
    h = tf.relu6(tf.conv2d(tf.depthwiseConv2d(h, v.d1 as tf.Tensor4D, 1, 'same'), v.p1 as tf.Tensor4D, 1, 'same'));
    h = tf.relu6(tf.conv2d(tf.depthwiseConv2d(h, v.d2 as tf.Tensor4D, 2, 'same'), v.p2 as tf.Tensor4D, 1, 'same'));
    const logits = tf.add(tf.matMul(tf.mean(h, [1, 2]) as tf.Tensor2D, v.fc as tf.Tensor2D), v.fb);
    return tf.losses.softmaxCrossEntropy(labels, logits);
  };
  const opt = tf.train.adam(1e-3);
  const ms = timeFresh(() => opt.minimize(loss, true, Object.values(v)) as Tensor, reps);
  opt.dispose();
  tf.dispose([x, labels, ...Object.values(v)]);
  return ms;
}

const fmt = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(1)).padStart(8);

// Keep a handle on the stock wasm Conv2DBackpropInput before ours replaces it.
const stockConfig = tf.getKernel('Conv2DBackpropInput', 'wasm');
const stockInput: KernelConfig | undefined = stockConfig ? { ...stockConfig } : undefined;

const results: Array<{ backend: string; label: string; r: Record<string, number> }> = [];
const steps: Array<{ backend: string; ms: number }> = [];
for (const backend of withCpu ? (['wasm', 'cpu'] as const) : (['wasm'] as const)) {
  await initBackend(backend);
  if (backend === 'wasm' && stockInput?.setupFunc) stockInput.setupFunc(tf.backend());
  const reps = backend === 'cpu' ? 1 : REPS;
  for (const c of CASES) results.push({ backend, label: c.label, r: benchCase(c, reps) });
  steps.push({ backend, ms: benchTrainStep(reps) });
}

console.log(
  `CPU ms per call (best of ${REPS} on wasm${withCpu ? ', a single cold call on cpu' : ''}); stock dX = the Conv2DBackpropInput tfjs-backend-wasm ships`,
);
console.log(
  `${'backend'.padEnd(8)}${'shape'.padEnd(34)}${'forward'.padStart(8)}${'dFilter'.padStart(8)}${'dInput'.padStart(8)}${'stock dX'.padStart(9)}`,
);
for (const { backend, label, r } of results) {
  console.log(
    `${backend.padEnd(8)}${label.padEnd(34)}${fmt(r.forward)}${fmt(r.filter)}${fmt(r.input)} ${fmt(r.stockInput)}`,
  );
}
console.log(
  '\nOne Adam step, MobileNet-style CNN (conv s2 → BN → relu6 → dw/pw ×2 → mean → dense), batch 32, 56×56×3:',
);
for (const { backend, ms } of steps) console.log(`${backend.padEnd(8)}${fmt(ms)} ms`);

/**
 * Benchmark of partial fine-tuning at CPU cost: how much the same backbone gains when only
 * its top layers train, on cached activations of its frozen bottom. The bottom of the cub200
 * preset's MobileNetV2 (output stride 16) runs once per image (cached, int8, with flips); the top,
 * from `--from` to the feature map, is imported as float tfjs ops and trained with a linear
 * classifier on its pooled features (the paper's black-box baseline, with a tuned top).
 * It prints validation top-1 of the frozen top (the baseline) and after each tuning epoch.
 *
 *   node trainer/bench/partial-finetune.ts [--from 624_quantized] [--epochs 3] [--lr 1e-4] [--copies 0]
 *
 * 624_quantized is the input of the last 1x1 conv (320 -> 1280 channels); 452_quantized is the
 * input of the last inverted-residual block. Needs ../shared/data (or $PROTOPNET_DATA).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { importOnnxBackbone } from '../src/backbone/onnx-import.ts';
import { crossEntropy } from '../src/head/losses.ts';
import { Adam } from '../src/optim/adam.ts';
import { referenceDataDir, resolveDataPath } from '../src/core/data-path.ts';
import { prepareData } from '../src/model/prepare-data.ts';
import { resolveConfig } from '../src/config/presets.ts';
import { exists } from '../src/core/run-dir.ts';
import { Rng } from '../src/core/rng.ts';
import { BASELINE_TRAINING, linearLogits, pooledFeatures, trainLinear } from '../src/stages/linear-probe.ts';
import { accuracy } from '../src/stages/predict.ts';
import type { FeatureSource } from '../src/stages/sources.ts';
import { initBackend } from '../src/tf/backend.ts';
import { answerHelp, benchNumber } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/partial-finetune.ts [--from <tensor>] [--epochs N] [--lr X] [--batch N] [--copies N]

Partial fine-tuning at CPU cost on ../shared/data/cub200: the cub200 network's activations at --from
(default 624_quantized) are cached; the layers after it train with a linear classifier on pooled features.
Prints validation top-1 of the frozen top (the baseline) and after each tuning epoch (--lr for the top,
10x for the classifier; default 3 epochs at 1e-4, batch 32). --copies N also caches the bottom's activations of N
augmented copies of every training image (data.augment.cachedCopies); each tuning step then draws every image from
its plain or augmented copies, as the prototype phases do.`,
);

const { values } = parseArgs({
  options: {
    from: { type: 'string', default: '624_quantized' },
    epochs: { type: 'string', default: '3' },
    lr: { type: 'string', default: '1e-4' },
    batch: { type: 'string', default: '32' },
    copies: { type: 'string', default: '0' },
  },
});
const epochs = benchNumber('epochs', values.epochs, { integer: true, min: 1 })!;
const lr = benchNumber('lr', values.lr, { above: 0 })!;
const batch = benchNumber('batch', values.batch, { integer: true, min: 1 })!;
const copies = benchNumber('copies', values.copies, { integer: true, min: 0 })!;
const data = join(referenceDataDir(), 'cub200');
if (!(await exists(data))) {
  console.log(`skipped: ${data} not found (set PROTOPNET_DATA to the folder holding cub200/)`);
  process.exit(0);
}
const from = values.from!;
const config = resolveConfig('cub200', {
  backbone: { kind: 'onnx', tap: from },
  data: { augment: { cachedCopies: copies } },
});
const b = config.backbone;
if (b.kind !== 'onnx' || !b.path) throw new Error('the cub200 preset is expected to use an ONNX backbone file');
const backend = await initBackend(config.backend);
console.log(`backend ${backend.description}; top of the network from ${from}`);
const t0 = Date.now();
const prepared = await prepareData(config, data, { splits: ['train', 'val'] });
console.log(
  `bottom activations ${prepared.featureShape.join('x')} ready in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
);
const top = await importOnnxBackbone({
  path: resolveDataPath(b.path),
  tap: 'auto',
  preprocess: b.preprocess,
  from,
  fromShape: prepared.featureShape,
  outputStride: b.outputStride,
});
console.log(`top: ${top.trainableVariables().length / 2} convs, feature map ${top.featureShape.join('x')}`);

/** The source's bottom activations through the top. */
const throughTop = (inner: FeatureSource): FeatureSource => ({
  ...inner,
  shape: top.featureShape,
  features: (idx, flipped, training, seeds) => top.apply(inner.features(idx, flipped, false, seeds), training),
});
const train = throughTop(prepared.sources.train!);
const val = throughTop(prepared.sources.val!);
const C = prepared.dataset.classes.length;
const rng = new Rng(config.seed);

// The frozen top: the baseline recipe on pooled features.
const pooledTrain = await pooledFeatures(train, { flip: true, label: 'pooling train' });
const pooledVal = await pooledFeatures(val, { flip: false, label: 'pooling val' });
const probe = trainLinear(pooledTrain, C, { ...BASELINE_TRAINING, rng, quiet: true });
const top1 = (logits: Float32Array, labels: Int32Array) =>
  accuracy({ n: labels.length, numClasses: C, logits, labels }).top1;
console.log(
  `frozen top (baseline): val top-1 ${(100 * top1(linearLogits(probe, pooledVal.x, pooledVal.n), pooledVal.labels)).toFixed(1)}%`,
);

// Tuning: the top and the linear layer (started from the probe) together, one random flip per image.
const w = tf.variable(tf.tensor2d(probe.w, [probe.dim, C]));
const bias = tf.variable(tf.tensor1d(probe.b));
const opt = new Adam([
  { name: 'top', lr, vars: top.trainableVariables().map((v, i) => [`top.${i}`, v] as [string, tf.Variable]) },
  {
    name: 'linear',
    lr: lr * 10,
    vars: [
      ['w', w],
      ['b', bias],
    ],
  },
]);
const logitsOf = (source: FeatureSource, idx: number[], flipped: boolean[], training: boolean, seeds?: number[]) => {
  let pooled = tf.mean(source.features(idx, flipped, training, seeds), [1, 2]) as tf.Tensor2D;
  if (training) pooled = tf.dropout(pooled, BASELINE_TRAINING.inputDropout, undefined, rng.int(2 ** 31)) as tf.Tensor2D;
  return tf.add(tf.matMul(pooled, w), bias) as tf.Tensor2D;
};
const evaluate = (): number => {
  const logits = new Float32Array(val.n * C);
  for (let s = 0; s < val.n; s += 64) {
    const idx = Array.from({ length: Math.min(64, val.n - s) }, (_, k) => s + k);
    const out = tf.tidy(() =>
      logitsOf(
        val,
        idx,
        idx.map(() => false),
        false,
      ),
    );
    logits.set(out.dataSync(), s * C);
    out.dispose();
  }
  return top1(logits, val.labels);
};
for (let e = 0; e < epochs; e++) {
  const tE = Date.now();
  const order = rng.shuffle(Array.from({ length: train.n }, (_, i) => i));
  let lossSum = 0;
  for (let s = 0; s < order.length; s += batch) {
    const idx = order.slice(s, s + batch);
    const flipped = idx.map(() => rng.next() < 0.5);
    // Picks among each image's plain and augmented copies (no draw without copies: the same stream as before).
    const seeds = copies > 0 ? idx.map(() => rng.int(2 ** 31)) : undefined;
    const labels = tf.tensor1d(
      Int32Array.from(idx, (i) => train.labels[i]),
      'int32',
    );
    const { value, grads } = tf.variableGrads(() => {
      const ce = crossEntropy(logitsOf(train, idx, flipped, true, seeds), labels);
      return tf.add(ce, tf.mul(tf.sum(tf.square(w)), BASELINE_TRAINING.weightDecay / 2)) as tf.Scalar;
    });
    opt.apply(grads);
    lossSum += value.dataSync()[0] * idx.length;
    tf.dispose([value, labels, ...Object.values(grads)]);
    if (process.stdout.isTTY) process.stdout.write(`\repoch ${e + 1}: ${s + idx.length}/${train.n}`);
  }
  const acc = evaluate();
  console.log(
    `\ntuned top, epoch ${e + 1}: loss ${(lossSum / train.n).toFixed(3)}, val top-1 ${(100 * acc).toFixed(1)}% (${((Date.now() - tE) / 1000).toFixed(0)} s)`,
  );
}

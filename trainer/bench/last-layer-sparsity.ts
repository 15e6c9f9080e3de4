/**
 * Stage 3's accuracy against sparsity: from a run's push-tune checkpoint (the
 * last layer as it enters stage 3), fit the last layer with each L1 strength and
 * solver and print validation top-1 beside the share of wrong-class weights that
 * are exactly 0. The default strength of the presets is picked from this curve.
 * `--phase warmup` fits it on the free prototypes instead, before push: what push costs once stage 3 has run.
 *
 *   node trainer/bench/last-layer-sparsity.ts <run dir> [--data <dataset>] [--epochs N] [--l1 a,b,c] [--phase name]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../src/core/rng.ts';
import { pickTensors } from '../src/core/host-tensors.ts';
import { loadCheckpoint } from '../src/run/checkpoint.ts';
import { parseConfig } from '../src/config/config.ts';
import { prepareData } from '../src/model/prepare-data.ts';
import { readJson, runPaths } from '../src/core/run-dir.ts';
import { referenceDataDir } from '../src/core/data-path.ts';
import { initBackend } from '../src/tf/backend.ts';
import { newRunHead } from '../src/run/train-run.ts';
import {
  computeSimilarities,
  lastLayerOptimizer,
  lastLayerSparsity,
  recenterRows,
  similarityAccuracy,
  trainLastLayerEpoch,
  wrongClassMaskTensor,
  type LastLayerSettings,
} from '../src/stages/last-layer.ts';
import { answerHelp, benchNumber } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/last-layer-sparsity.ts <run dir> [--data <dataset>] \\
         [--epochs N] [--l1 a,b,c] [--lr x] [--phase pushTune]

Stage 3 accuracy against sparsity, from a run's push-tune checkpoint, for each L1 strength and solver.
--phase names the checkpoint whose head enters stage 3 (default pushTune; warmup or joint: the free
prototypes before push).`,
);

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    data: { type: 'string' },
    epochs: { type: 'string', default: '10' },
    l1: { type: 'string', default: '0,1e-4,3e-4,1e-3,3e-3,1e-2' },
    lr: { type: 'string', default: '1e-3' },
    phase: { type: 'string', default: 'pushTune' },
  },
});
const run = positionals[0];
if (!run) {
  console.log(
    'usage: node trainer/bench/last-layer-sparsity.ts <run dir> [--data dir] [--epochs N] [--l1 a,b,c] [--lr x] [--phase name]',
  );
  process.exit(1);
}
const epochs = benchNumber('epochs', values.epochs, { integer: true, min: 1 })!;
const lr = benchNumber('lr', values.lr, { above: 0 })!;
const l1s = values.l1!.split(',').map((s) => benchNumber('l1', s, { min: 0 })!);
const paths = runPaths(resolve(run));
const ckptPath = paths.stageCheckpoint(values.phase!);
if (!existsSync(ckptPath)) {
  console.error(
    `${ckptPath} does not exist: --phase names a finished phase of the run (warmup, joint, push, pushTune)`,
  );
  process.exit(1);
}
const config = parseConfig(await readJson<unknown>(paths.config), paths.config);
await initBackend(config.backend, { quiet: true });
const dataDir = values.data ?? (config.backbone.kind === 'small-cnn' ? null : join(referenceDataDir(), 'cub200'));
const data = await prepareData(config, dataDir, { quiet: true, runDir: paths.dir, splits: ['train', 'val'] });
const ckpt = await loadCheckpoint(ckptPath);
const head = newRunHead(config, data, new Rng(config.seed));
head.setWeights(pickTensors(ckpt.tensors, 'head.'));
const start = head.lastLayer.dataSync().slice() as Float32Array;
const sims = await computeSimilarities(head, data.sources.train!, { flip: config.data.flip, quiet: true });
const valSims = await computeSimilarities(head, data.sources.val!, { flip: false, quiet: true });
const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(7);

const entering = similarityAccuracy(head, valSims)!;
console.log(
  `${run} (after ${values.phase}): ${head.numPrototypes} prototypes, ${sims.n} training similarity rows, ${valSims.n} validation images`,
);
console.log(
  `entering stage 3: val top-1 ${pct(entering.top1)}, wrong-class weights exactly 0 ${pct(lastLayerSparsity(head, 0))}`,
);
console.log(
  `${'solver'.padEnd(12)} ${'lr'.padStart(7)} ${'l1'.padStart(8)} ${'epochs'.padStart(6)} ${'val top-1'.padStart(9)} ${'best'.padStart(7)} ${'exact 0'.padStart(7)} ${'|w|<1e-3'.padStart(8)} ${'seconds'.padStart(7)}`,
);

const settings: LastLayerSettings[] = [
  { lr: config.lastLayer.lr, l1: config.lastLayer.l1, l1Solver: 'subgradient' },
  ...l1s.map((l1) => ({ lr, l1, l1Solver: 'proximal' as const })),
];
for (const setting of settings) {
  head.lastLayer.assign(tf.tensor2d(start, head.lastLayer.shape as [number, number]));
  if (setting.l1Solver === 'proximal') recenterRows(head);
  const mask = wrongClassMaskTensor(head);
  const optimizer = lastLayerOptimizer(head, setting, mask);
  const rng = new Rng(config.seed);
  const t0 = Date.now();
  let best = 0;
  for (let e = 0; e < epochs; e++) {
    trainLastLayerEpoch({
      head,
      data: sims,
      batchSize: config.lastLayer.batchSize,
      l1: setting.l1,
      optimizer,
      rng,
    });
    best = Math.max(best, similarityAccuracy(head, valSims)!.top1);
  }
  const v = similarityAccuracy(head, valSims)!;
  optimizer.dispose();
  mask.dispose();
  console.log(
    `${setting.l1Solver.padEnd(12)} ${setting.lr.toExponential(0).padStart(7)} ${setting.l1.toExponential(0).padStart(8)} ${String(epochs).padStart(6)} ${pct(v.top1).padStart(9)} ${pct(best)} ${pct(lastLayerSparsity(head, 0))} ${pct(lastLayerSparsity(head)).padStart(8)} ${((Date.now() - t0) / 1000).toFixed(0).padStart(7)}`,
  );
}

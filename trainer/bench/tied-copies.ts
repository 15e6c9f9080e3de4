/**
 * Push with several real patches per prototype: every free prototype of a run's warm-up checkpoint is tied
 * to its K nearest own-class training patches, one per image (K = 1 is the trainer's push), giving K tied
 * prototypes where there was one. The expanded model then runs the run's push-tune and stage 3 on this
 * thread, and the validation top-1 after push, after each push-tune epoch and after each stage-3 epoch is
 * printed. Every K starts from the same checkpoint and the same random stream, so the rows are paired.
 *
 *   node_modules/.bin/node trainer/bench/tied-copies.ts <run dir> [--data <dataset>] [--copies 1,3] [--stream N]
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { answerHelp, benchNumber } from '../src/cli/args.ts';
import { parseConfig, type TrainConfig } from '../src/config/config.ts';
import { referenceDataDir } from '../src/core/data-path.ts';
import { pickTensors } from '../src/core/host-tensors.ts';
import { Rng } from '../src/core/rng.ts';
import { readJson, runPaths } from '../src/core/run-dir.ts';
import type { ProtoHead } from '../src/head/proto-head.ts';
import { prepareData, type PreparedData } from '../src/model/prepare-data.ts';
import { Adam } from '../src/optim/adam.ts';
import { loadCheckpoint } from '../src/run/checkpoint.ts';
import { newRunHead } from '../src/run/train-run.ts';
import {
  computeSimilarities,
  lastLayerOptimizer,
  lastLayerSparsity,
  recenterRows,
  similarityAccuracy,
  trainLastLayerEpoch,
  wrongClassMaskTensor,
} from '../src/stages/last-layer.ts';
import { accuracy, predict } from '../src/stages/predict.ts';
import { phaseGroups, setPhaseLearningRates, trainEpochSteps } from '../src/stages/prototype-phase.ts';
import { type PushRecord, prototypesByClass, sourcePatchFeatures } from '../src/stages/push.ts';
import { chunkItems, type FeatureSource } from '../src/stages/sources.ts';
import { initBackend } from '../src/tf/backend.ts';

const usage = `usage: node_modules/.bin/node trainer/bench/tied-copies.ts <run dir> [--data <dataset>] \\
         [--copies 1,3] [--stream N]

Ties each free prototype of the run's warm-up checkpoint to its K nearest own-class patches (one per
image) for each K of --copies, then runs the run's push-tune and stage 3 on the expanded model and prints
validation top-1. --stream offsets the random stream of push-tune and stage 3 from the run's seed (default 17).`;
answerHelp(import.meta, usage);

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    data: { type: 'string' },
    copies: { type: 'string', default: '1,3' },
    stream: { type: 'string', default: '17' },
  },
});
const run = positionals[0];
if (!run) {
  console.log(usage);
  process.exit(1);
}
const copies = values.copies!.split(',').map((s) => benchNumber('copies', s, { integer: true, min: 1, max: 20 })!);
const stream = benchNumber('stream', values.stream, { integer: true, min: 0 })!;
const paths = runPaths(resolve(run));
const warmup = paths.stageCheckpoint('warmup');
if (!existsSync(warmup)) {
  console.error(`${warmup} does not exist: the run must have finished its warm-up`);
  process.exit(1);
}
const config = parseConfig(await readJson<unknown>(paths.config), paths.config);
if ('trainable' in config.backbone && config.backbone.trainable) {
  console.error(`${paths.config}: the bench ties prototypes to cached features of a frozen backbone`);
  process.exit(1);
}
await initBackend(config.backend, { quiet: true });
const dataDir = values.data ?? (config.backbone.kind === 'small-cnn' ? null : join(referenceDataDir(), 'cub200'));
const data = await prepareData(config, dataDir, { quiet: true, runDir: paths.dir, splits: ['train', 'val'] });
const ckpt = await loadCheckpoint(warmup);
const free = newRunHead(config, data, new Rng(config.seed));
free.setWeights(pickTensors(ckpt.tensors, 'head.'));
const train = data.sources.train!;
const candidates = nearestPerImage(free, train);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

console.log(`${run}: ${free.numPrototypes} free prototypes, ${train.n} training images, stream ${stream}`);
for (const k of copies) {
  const t0 = Date.now();
  const records = tiedRecords(candidates, free.protoClass, k, train.shape[1]);
  const head = newRunHead(
    { ...config, head: { ...config.head, prototypesPerClass: config.head.prototypesPerClass * k } },
    data,
    new Rng(config.seed),
  );
  // The warm-up's add-on; the last layer keeps its +1 / incorrect-class start, as after push.
  const weights = head.getWeights();
  for (const [name, t] of ckpt.tensors) if (name.startsWith('head.addon')) weights.set(name, t);
  head.setWeights(weights);
  const misplaced = records.find((r) => head.protoClass[r.prototype] !== r.classIndex);
  if (misplaced) throw new Error(`prototype ${misplaced.prototype} is not of class ${misplaced.classIndex}`);
  head.tieToPatches(sourcePatchFeatures(records, train, head.spec.inputChannels, { quiet: true }));
  const mean = records.reduce((a, r) => a + r.distance, 0) / records.length;
  const line = [`K ${k}: ${head.numPrototypes} tied prototypes (mean distance ${mean.toFixed(3)})`];
  line.push(`after push ${pct(await valTop1(head, data))}`);
  const rng = new Rng(config.seed + stream);
  const tuned = await pushTune(head, config, train, rng, data);
  line.push(`push-tune ${tuned.map(pct).join(' / ')}`);
  const last = await stage3(head, config, data, rng);
  line.push(`stage 3 ${last.map(pct).join(' ')} (best ${pct(Math.max(...last))})`);
  line.push(
    `wrong-class weights exactly 0 ${pct(lastLayerSparsity(head, 0))}, ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  console.log(line.join('; '));
  head.dispose();
}

interface Candidate {
  distance: number;
  item: number;
  patch: number;
}

/** For every prototype, its closest patch in each training image of its class. */
function nearestPerImage(head: ProtoHead, source: FeatureSource): Candidate[][] {
  const m = head.numPrototypes;
  const HW = source.shape[0] * source.shape[1];
  const out: Candidate[][] = Array.from({ length: m }, () => []);
  const byClass = prototypesByClass(head);
  for (const idx of chunkItems(source.n, 64)) {
    const t = tf.tidy(() =>
      head.distanceMaps(
        source.features(
          idx,
          idx.map(() => false),
          false,
        ),
      ),
    );
    const d = t.dataSync() as Float32Array;
    t.dispose();
    idx.forEach((item, b) => {
      for (const j of byClass.get(source.labels[item]) ?? []) {
        let best = Infinity;
        let patch = -1;
        for (let p = 0; p < HW; p++) {
          const v = d[(b * HW + p) * m + j];
          if (v < best) {
            best = v;
            patch = p;
          }
        }
        out[j].push({ distance: best, item, patch });
      }
    });
  }
  return out;
}

/** Free prototype j becomes prototypes j·k + r, r < k (class-major, as the heads lay them out): its k nearest images' patches. */
function tiedRecords(candidates: Candidate[][], protoClass: Int32Array, k: number, W: number): PushRecord[] {
  const records: PushRecord[] = [];
  candidates.forEach((list, j) => {
    const nearest = [...list].sort((a, b) => a.distance - b.distance || a.item - b.item).slice(0, k);
    nearest.forEach((n, r) =>
      records.push({
        prototype: j * k + r,
        classIndex: protoClass[j],
        item: n.item,
        row: Math.floor(n.patch / W),
        col: n.patch % W,
        distance: n.distance,
      }),
    );
  });
  return records;
}

async function valTop1(head: ProtoHead, d: PreparedData): Promise<number> {
  return accuracy(await predict(head, d.sources.val!)).top1;
}

async function pushTune(head: ProtoHead, c: TrainConfig, source: FeatureSource, rng: Rng, d: PreparedData) {
  const phase = c.pushTune;
  const optimizer = new Adam(phaseGroups(phase, head, null));
  const out: number[] = [];
  for (let e = 0; e < phase.epochs; e++) {
    setPhaseLearningRates(optimizer, phase, e);
    await trainEpochSteps({
      label: `push-tune ${e + 1}`,
      phase,
      head,
      source,
      loss: c.loss,
      optimizer,
      rng,
      quiet: true,
      backboneTraining: false,
    });
    head.syncTiedPrototypes();
    out.push(await valTop1(head, d));
  }
  optimizer.dispose();
  return out;
}

async function stage3(head: ProtoHead, c: TrainConfig, d: PreparedData, rng: Rng): Promise<number[]> {
  const sims = await computeSimilarities(head, d.sources.train!, { flip: c.data.flip, quiet: true });
  const valSims = await computeSimilarities(head, d.sources.val!, { flip: false, quiet: true });
  if (c.lastLayer.l1Solver === 'proximal') recenterRows(head);
  const mask = wrongClassMaskTensor(head);
  const optimizer = lastLayerOptimizer(head, c.lastLayer, mask);
  const out: number[] = [];
  for (let e = 0; e < c.lastLayer.epochs; e++) {
    trainLastLayerEpoch({ head, data: sims, batchSize: c.lastLayer.batchSize, l1: c.lastLayer.l1, optimizer, rng });
    out.push(similarityAccuracy(head, valSims)!.top1);
  }
  optimizer.dispose();
  mask.dispose();
  return out;
}

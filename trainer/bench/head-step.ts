/**
 * Speed of one stage-1 training step of the head (frozen features) on the
 * selected backend: prints ms per batch and projected seconds per CUB epoch.
 * Usage: node trainer/bench/head-step.ts [batch=64] [prototypes=2000] [D=1280]
 */
import * as tf from '@tensorflow/tfjs-core';
import { ProtoHead } from '../src/head/proto-head.ts';
import { Adam } from '../src/optim/adam.ts';
import { PhaseConfigDefaults } from '../../tests/support/phase-defaults.ts';
import { Rng } from '../src/core/rng.ts';
import { phaseGroups, trainPrototypeEpoch } from '../src/stages/prototype-phase.ts';
import { initBackend } from '../src/tf/backend.ts';
import { answerHelp } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/head-step.ts [batch=64] [prototypes=2000] [D=1280]

Speed of one stage-1 training step of the head on frozen features: ms per batch and projected seconds per CUB
epoch (BACKEND=wasm|cpu|tensorflow picks the backend).`,
);

const [B = 64, M = 2000, D = 1280] = process.argv.slice(2).map(Number);
const info = await initBackend((process.env.BACKEND as 'auto') ?? 'auto');
const rng = new Rng(0);
const C = M / 10;
const head = new ProtoHead(
  {
    inputChannels: D,
    addOn: [
      { channels: 128, activation: 'relu' },
      { channels: 128, activation: 'sigmoid' },
    ],
    numClasses: C,
    prototypesPerClass: 10,
    incorrectClassWeight: -0.5,
  },
  rng,
);
const n = B * 8;
const feats = new Float32Array(49 * D).map(() => Math.max(0, rng.normal()));
const source = {
  n,
  shape: [7, 7, D] as [number, number, number],
  labels: Int32Array.from({ length: n }, (_, i) => i % C),
  canFlip: false,
  canAugment: false,
  features: (idx: number[]) =>
    tf.tensor4d(
      new Float32Array(idx.length * 49 * D).map((_, k) => feats[k % feats.length]),
      [idx.length, 7, 7, D],
    ),
};
const phase = { ...PhaseConfigDefaults, batchSize: B };
const opt = new Adam(phaseGroups(phase, head, null));
await trainPrototypeEpoch({
  label: 'warm',
  phase,
  head,
  source: { ...source, n: B },
  loss: { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 },
  optimizer: opt,
  rng,
  quiet: true,
});
const stats = await trainPrototypeEpoch({
  label: 'bench',
  phase,
  head,
  source,
  loss: { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 },
  optimizer: opt,
  rng,
  quiet: true,
});
const msPerBatch = (stats.seconds * 1000) / (n / B);
console.log(
  `${info.description}: batch ${B}, ${M} prototypes, D=${D}: ${msPerBatch.toFixed(0)} ms/batch, ${(msPerBatch / B).toFixed(2)} ms/image -> ${(((msPerBatch / B) * 4994) / 1000).toFixed(0)} s per CUB epoch (4,994 images)`,
);

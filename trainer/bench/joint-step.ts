/**
 * Speed of one joint-stage step (backbone + head, forward, backward, Adam) at
 * 224 px, batch 32 by default, on the selected tfjs backend. Compare with
 * trainer/bench/torch_joint_step.py (the same architecture in PyTorch).
 * Usage: node trainer/bench/joint-step.ts [onnx-mobilenetv2|teachable-0.35] [batch=32] [steps=3] [microBatch=8] [threads=cores]
 * (wasm's heap cannot hold a MobileNetV2 backward pass at batch 32: micro-batches of 8
 * accumulate the same gradient; with threads > 1 they are spread over gradient workers,
 * as training does on wasm.)
 */
import { join } from 'node:path';
import { IMAGENET_224, SYMMETRIC_224 } from '@protoatlas/shared';
import { importOnnxBackbone } from '../src/backbone/onnx-import.ts';
import { loadTfjsLayersBackbone } from '../src/backbone/tfjs-layers-backbone.ts';
import type { TrainableBackbone } from '../src/backbone/types.ts';
import { ProtoHead } from '../src/head/proto-head.ts';
import { Adam } from '../src/optim/adam.ts';
import { referenceDataDir } from '../src/core/data-path.ts';
import { Rng } from '../src/core/rng.ts';
import { availableParallelism } from 'node:os';
import { packImages } from '../src/data/shared-images.ts';
import { GradPool } from '../src/stages/grad-pool.ts';
import { sharedImageSource } from '../src/stages/sources.ts';
import { phaseGroups, trainPrototypeEpoch } from '../src/stages/prototype-phase.ts';
import { initBackend, type BackendPreference } from '../src/tf/backend.ts';
import { PhaseConfigDefaults } from '../../tests/support/phase-defaults.ts';
import { PAPER_AUGMENT } from '../src/data/augment.ts';
import { answerHelp } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/joint-step.ts [onnx-mobilenetv2|teachable-0.35] \\
         [batch=32] [steps=3] [microBatch=8] [threads=cores]

Speed of one joint-stage step (backbone + head, forward, backward, Adam) at 224 px on the selected tfjs backend.`,
);

const which = process.argv[2] ?? 'onnx-mobilenetv2';
const B = Number(process.argv[3] ?? 32);
const steps = Number(process.argv[4] ?? 3);
const microBatch = Number(process.argv[5] ?? 8);
const threads = Number(process.argv[6] ?? availableParallelism());
const info = await initBackend((process.env.BACKEND as 'auto') ?? 'auto');
const data = referenceDataDir();
let backbone: TrainableBackbone;
if (which === 'onnx-mobilenetv2') {
  backbone = await importOnnxBackbone({
    path: join(data, 'backbones/mobilenetv2-int8-onnx/mobilenetv2-12-int8.onnx'),
    tap: 'auto',
    preprocess: IMAGENET_224,
  });
} else if (which === 'teachable-0.35') {
  backbone = await loadTfjsLayersBackbone({
    modelJsonPath: join(data, 'backbones/teachable-mobilenetv2-0.35/model.json'),
    cutLayer: 'out_relu',
    preprocess: SYMMETRIC_224,
  });
} else throw new Error(`unknown backbone "${which}": onnx-mobilenetv2 or teachable-0.35`);

const rng = new Rng(0);
const C = 200;
const D = backbone.featureShape[2];
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
const size = backbone.preprocess.size;
const images = packImages(
  Array.from({ length: B }, () => ({
    width: size,
    height: size,
    data: Uint8Array.from({ length: size * size * 3 }, () => rng.int(256)),
  })),
);
const source = sharedImageSource(
  {
    images,
    labels: Int32Array.from({ length: B }, (_, i) => i % C),
    preprocess: backbone.preprocess,
    augment: PAPER_AUGMENT,
  },
  backbone,
);
const pool =
  threads > 1
    ? await GradPool.start({
        threads,
        backbone,
        sources: { train: source },
        head,
        backend: info.name as BackendPreference,
      })
    : null;
// The paper's joint learning rates: features 1e-4, add-on 3e-3, prototypes 3e-3.
const phase = {
  ...PhaseConfigDefaults,
  batchSize: B,
  microBatch,
  lr: { features: 1e-4, addOn: 3e-3, prototypes: 3e-3, lastLayer: 0 },
};
const opt = new Adam(phaseGroups(phase, head, backbone));
const loss = { crossEntropy: 1, clusterCost: 0.8, separationCost: -0.08 };
const times: number[] = [];
for (let s = 0; s < steps + 1; s++) {
  const t = performance.now();
  await trainPrototypeEpoch({
    label: 'joint step',
    phase,
    head,
    source,
    loss,
    optimizer: opt,
    rng,
    quiet: true,
    backboneTraining: true,
    pool: pool && { pool, backbone },
  });
  if (s > 0) times.push((performance.now() - t) / 1000); // the first step compiles kernels
}
await pool?.close();
times.sort((a, b) => a - b);
const med = times[Math.floor(times.length / 2)];
console.log(`backend: ${info.description}`);
console.log(
  `joint step, ${which} (${backbone.trainableVariables().length} backbone tensors) + 2,000-prototype head, batch ${B} (micro-batches of ${microBatch}) at ${size}px, augmentation on, ${threads} gradient thread(s)`,
);
console.log(
  `median ${med.toFixed(2)} s/step over ${times.length} steps (${((med * 1000) / B).toFixed(0)} ms/image); a 4,994-image CUB epoch ≈ ${((med * 4994) / B / 60).toFixed(1)} min`,
);

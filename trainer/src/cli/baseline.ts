import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PRESET_NAMES, resolveConfig } from '../config/presets.ts';
import { prepareData } from '../model/prepare-data.ts';
import { Rng } from '../core/rng.ts';
import { writeJson } from '../core/run-dir.ts';
import { BASELINE_TRAINING, linearLogits, pooledFeatures, trainLinear } from '../stages/linear-probe.ts';
import { accuracy } from '../stages/predict.ts';
import { initBackend } from '../tf/backend.ts';
import { parseCli, runMain, userPath } from './args.ts';

const USAGE = `usage: npm run baseline --workspace trainer -- --preset <${PRESET_NAMES.join('|')}> --data <dataset dir> --out <dir> [--epochs N]

Trains the paper's "Baseline": global average pooling of the same frozen backbone features + a linear softmax classifier.`;

runMain(async () => {
  const { values } = parseCli(
    {
      preset: { type: 'string', default: 'cub200' },
      data: { type: 'string' },
      out: { type: 'string' },
      epochs: { type: 'string', default: String(BASELINE_TRAINING.epochs) },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (!values.out) throw new Error(`--out <dir> is required\n\n${USAGE}`);
  const config = resolveConfig(values.preset!);
  if (config.backbone.kind === 'small-cnn')
    throw new Error(
      `preset ${config.preset} trains its backbone from scratch; the baseline needs a pretrained frozen backbone (use cub200)`,
    );
  const backend = await initBackend(config.backend);
  const t0 = Date.now();
  const data = await prepareData(config, values.data ? userPath(values.data!) : null, { splits: ['train', 'val'] });
  const rng = new Rng(config.seed);
  const train = await pooledFeatures(data.sources.train!, { flip: config.data.flip, label: 'pooling train' });
  const val = await pooledFeatures(data.sources.val!, { flip: false, label: 'pooling val' });
  const C = data.dataset.classes.length;
  const curve: { epoch: number; loss: number; valTop1: number }[] = [];
  const model = trainLinear(train, C, {
    ...BASELINE_TRAINING,
    epochs: Number(values.epochs),
    rng,
    onEpoch: (epoch, m, loss) => {
      const acc = accuracy({ n: val.n, numClasses: C, logits: linearLogits(m, val.x, val.n), labels: val.labels });
      curve.push({ epoch: epoch + 1, loss, valTop1: acc.top1 });
    },
  });
  const valAcc = accuracy({ n: val.n, numClasses: C, logits: linearLogits(model, val.x, val.n), labels: val.labels });
  const trainAcc = accuracy({
    n: train.n,
    numClasses: C,
    logits: linearLogits(model, train.x, train.n),
    labels: train.labels,
  });
  const result = {
    method: 'baseline: global average pooling + linear softmax on frozen features',
    preset: config.preset,
    backend: backend.description,
    data: data.dataset.root,
    classes: C,
    train: { n: data.itemsBySplit.train.length, top1: trainAcc.top1 },
    val: { n: valAcc.n, top1: valAcc.top1, top5: valAcc.top5 },
    curve,
    seconds: (Date.now() - t0) / 1000,
  };
  await mkdir(userPath(values.out!), { recursive: true });
  await writeJson(join(userPath(values.out!), 'baseline.json'), result);
  process.stdout.write(
    `baseline val top-1 ${(100 * valAcc.top1).toFixed(2)}%  top-5 ${(100 * valAcc.top5).toFixed(2)}%  (train top-1 ${(100 * trainAcc.top1).toFixed(1)}%, ${result.seconds.toFixed(0)}s)\nwrote ${join(values.out, 'baseline.json')}\n`,
  );
});

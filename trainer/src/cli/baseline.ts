/**
 * `npm run baseline`: the same backbone as a black box. On frozen features, global average pooling and
 * a linear softmax fitted to the pooled maps; with a trainable backbone (`cub200-finetune`), the same
 * head fine-tuned with the backbone through the preset's warm-up and joint phases (resumable).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PRESET_NAMES, resolveConfig } from '../config/presets.ts';
import type { TrainConfig } from '../config/config.ts';
import { BASELINE_FILE, type BaselineRecord } from '../analysis/baseline-record.ts';
import { prepareData } from '../model/prepare-data.ts';
import { Rng } from '../core/rng.ts';
import { exists, writeJson } from '../core/run-dir.ts';
import { baselinePaths, fineTuneBaseline } from '../run/finetune-baseline.ts';
import { BASELINE_TRAINING, linearLogits, pooledFeatures, trainLinear } from '../stages/linear-probe.ts';
import { accuracy } from '../stages/predict.ts';
import { initBackend } from '../tf/backend.ts';
import { numberFlag, parseCli, readOverride, runMain, userPath } from './args.ts';

const USAGE = `usage: npm run baseline --workspace trainer -- --preset <${PRESET_NAMES.join('|')}> --data <dataset dir> --out <dir> [--config <overrides.json>] [--epochs N] [--resume]

Trains the paper's "Baseline": global average pooling of the same backbone's features + a linear softmax classifier.
  frozen backbone (cub200):       fitted to the pooled frozen features (--epochs, default ${BASELINE_TRAINING.epochs})
  trainable backbone (cub200-finetune): fine-tuned with the backbone through the preset's warm-up and joint
                                  phases (learning rates, schedule, augmentation, dropout); checkpoints in --out,
                                  --resume continues a stopped run with the config it started with
Writes <out>/baseline.json (and, fine-tuned, config.json, metrics.jsonl, baseline.ckpt).`;

runMain(async () => {
  const { values } = parseCli(
    {
      preset: { type: 'string', default: 'cub200' },
      data: { type: 'string' },
      out: { type: 'string' },
      config: { type: 'string' },
      epochs: { type: 'string', default: String(BASELINE_TRAINING.epochs) },
      resume: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (!values.out) throw new Error(`--out <dir> is required\n\n${USAGE}`);
  const config = resolveConfig(values.preset!, await readOverride(values.config), values.config);
  const epochs = numberFlag('epochs', values.epochs, { integer: true, min: 1, max: 100000 })!;
  const dataDir = values.data ? userPath(values.data!) : null;
  const outDir = userPath(values.out!);
  if (config.backbone.kind === 'small-cnn')
    throw new Error(
      `preset ${config.preset} trains its backbone from scratch; the baseline needs a pretrained backbone (use cub200 or cub200-finetune)`,
    );
  // A fine-tuned baseline resumes with the config it started with, whatever --preset says.
  const resuming = values.resume! && (await exists(baselinePaths(outDir).checkpoint));
  if (config.backbone.trainable || resuming) await fineTunedBaseline(config, dataDir, outDir, values.resume!);
  else await frozenBaseline(config, dataDir, outDir, epochs);
});

async function fineTunedBaseline(
  config: TrainConfig,
  dataDir: string | null,
  outDir: string,
  resume: boolean,
): Promise<void> {
  const backend = await initBackend(config.backend);
  const r = await fineTuneBaseline({ config, dataDir, outDir, resume, backendName: backend.name });
  if (r === 'stopped') return;
  const last = r.history.at(-1);
  const result = {
    method: `baseline: the backbone fine-tuned with global average pooling + linear softmax (warm-up and joint phases of ${r.config.preset})`,
    preset: r.config.preset,
    backend: backend.description,
    data: r.dataRoot,
    classes: r.classes,
    train: {
      n: r.trainItems,
      top1: last?.trainAccuracy ?? null,
      note: 'running accuracy of the last epoch (augmented images)',
    },
    val: r.val ? { n: r.val.n, top1: r.val.top1, top5: r.val.top5 } : null,
    curve: r.history,
    seconds: r.history.reduce((a, h) => a + h.seconds, 0),
    valPredictions: r.valPredictions,
  } satisfies BaselineRecord;
  await writeJson(join(outDir, BASELINE_FILE), result);
  process.stdout.write(
    `fine-tuned baseline val top-1 ${r.val ? `${(100 * r.val.top1).toFixed(2)}%  top-5 ${(100 * r.val.top5).toFixed(2)}%` : 'n/a'}` +
      `  (${r.history.length} epochs, ${result.seconds.toFixed(0)} s of training)\nwrote ${join(outDir, BASELINE_FILE)}\n`,
  );
}

async function frozenBaseline(
  config: TrainConfig,
  dataDir: string | null,
  outDir: string,
  epochs: number,
): Promise<void> {
  const backend = await initBackend(config.backend);
  const t0 = Date.now();
  const data = await prepareData(config, dataDir, { splits: ['train', 'val'] });
  const rng = new Rng(config.seed);
  const train = await pooledFeatures(data.sources.train!, { flip: config.data.flip, label: 'pooling train' });
  const val = await pooledFeatures(data.sources.val!, { flip: false, label: 'pooling val' });
  const C = data.dataset.classes.length;
  const curve: { epoch: number; loss: number; valTop1: number }[] = [];
  const model = trainLinear(train, C, {
    ...BASELINE_TRAINING,
    epochs,
    rng,
    onEpoch: (epoch, m, loss) => {
      const acc = accuracy({ n: val.n, numClasses: C, logits: linearLogits(m, val.x, val.n), labels: val.labels });
      curve.push({ epoch: epoch + 1, loss, valTop1: acc.top1 });
    },
  });
  const valLogits = linearLogits(model, val.x, val.n);
  const valAcc = accuracy({ n: val.n, numClasses: C, logits: valLogits, labels: val.labels });
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
    valPredictions: {
      ids: data.itemsBySplit.val.map((it) => it.id),
      labels: [...val.labels],
      predicted: Array.from({ length: val.n }, (_, i) => argmax(valLogits.subarray(i * C, (i + 1) * C))),
    },
  } satisfies BaselineRecord;
  await mkdir(outDir, { recursive: true });
  await writeJson(join(outDir, BASELINE_FILE), result);
  process.stdout.write(
    `baseline val top-1 ${(100 * valAcc.top1).toFixed(2)}%  top-5 ${(100 * valAcc.top5).toFixed(2)}%  (train top-1 ${(100 * trainAcc.top1).toFixed(1)}%, ${result.seconds.toFixed(0)}s)\nwrote ${join(outDir, BASELINE_FILE)}\n`,
  );
}

/** Index of the largest value (the first, on ties: as argmax everywhere in the trainer). */
function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let c = 1; c < row.length; c++) if (row[c] > row[best]) best = c;
  return best;
}

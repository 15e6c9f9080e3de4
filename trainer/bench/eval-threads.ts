/**
 * The passes over cached features that only read the head (the baseline's pooling, similarities,
 * push, the nearest-patch search), timed on one thread and on the gradient threads, with a check
 * that both give the same values. Uses a fresh `cub200` head: the cost does not depend on its weights.
 *
 *   node trainer/bench/eval-threads.ts [--data <dataset dir>]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { answerHelp } from '../src/cli/args.ts';
import { resolveConfig } from '../src/config/presets.ts';
import { referenceDataDir } from '../src/core/data-path.ts';
import { Rng } from '../src/core/rng.ts';
import { prepareData } from '../src/model/prepare-data.ts';
import { newRunHead } from '../src/run/train-run.ts';
import { startGradPoolFor, type GradPool } from '../src/stages/grad-pool.ts';
import { pooledFeatures } from '../src/stages/linear-probe.ts';
import { nearestPatchesOver } from '../src/stages/nearest-patches.ts';
import { similaritiesOf } from '../src/stages/predict.ts';
import { pushPrototypes } from '../src/stages/push.ts';
import { initBackend } from '../src/tf/backend.ts';

const USAGE = `usage: node_modules/.bin/node trainer/bench/eval-threads.ts [--data <dataset dir>]

Times the read-only passes over the cub200 features on one thread and on the gradient threads.`;
answerHelp(import.meta, USAGE);
const { values } = parseArgs({ options: { data: { type: 'string' } } });
const dataDir = values.data ?? join(referenceDataDir(), 'cub200');

const config = resolveConfig('cub200');
await initBackend('wasm', { quiet: true });
const data = await prepareData(config, dataDir, { quiet: true, splits: ['train', 'val'] });
const train = data.sources.train!;
const val = data.sources.val!;
const fresh = () => newRunHead(config, data, new Rng(config.seed));
const probe = fresh();
const { pool, threads, why } = await startGradPoolFor(data, { threads: 'auto', backend: 'wasm', head: probe });
probe.dispose();
console.log(`gradient threads: ${threads} (${why}); ${train.n} training, ${val.n} validation images`);

const passes: [string, (p: GradPool | null) => Promise<unknown>][] = [
  [`pooling, ${train.n} training images`, (p) => pooledFeatures(train, { flip: false, quiet: true, pool: p })],
  [
    `similarities, ${val.n} validation images`,
    async (p) => {
      const head = fresh();
      const out = await similaritiesOf(head, val, { pool: p });
      head.dispose();
      return out;
    },
  ],
  [
    `push, onto ${val.n} validation images`,
    async (p) => {
      const head = fresh();
      const out = await pushPrototypes(head, val, { quiet: true, pool: p });
      head.dispose();
      return out;
    },
  ],
  [
    `nearest patches (k = 6), ${val.n} validation images`,
    async (p) => {
      const head = fresh();
      const out = await nearestPatchesOver(head, val, 6, { pool: p, quiet: true });
      head.dispose();
      return out;
    },
  ],
];

console.log('pass                                          1 thread   threads   speed-up   same values');
try {
  for (const [label, run] of passes) {
    let t = Date.now();
    const one = await run(null);
    const single = (Date.now() - t) / 1000;
    t = Date.now();
    const many = await run(pool);
    const spread = (Date.now() - t) / 1000;
    const same = JSON.stringify(one, replacer) === JSON.stringify(many, replacer);
    console.log(
      `${label.padEnd(45)} ${single.toFixed(1).padStart(7)} s ${spread.toFixed(1).padStart(7)} s ${(single / spread)
        .toFixed(2)
        .padStart(8)}x   ${same ? 'yes' : 'NO'}`,
    );
  }
} finally {
  await pool?.close();
}

/** Typed arrays compared element by element. */
function replacer(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) ? Array.from(value as Float32Array) : value;
}

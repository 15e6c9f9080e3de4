/**
 * CPU time of the request's two plain-JS steps, with nothing else in the
 * measurement: `preprocess` (modelInputRgb of the 500x375 picture a 12 MP JPEG
 * decodes to at 1/8, to the model's 224 input, upright and turned) and
 * `explain` (explain() on random distance maps of the CUB model's shape: 2,000
 * prototypes on a 14x14 grid, 200 classes, top 3 classes with 3 pieces of
 * evidence, boxes at the served side). With --base, another checkout's
 * shared/src runs the same inputs, taking turns call by call with this one,
 * so a busy machine slows both alike.
 *
 *   node_modules/.bin/node edge/bench/cpu-steps.ts [--runs 200] [--base <dir>]
 *     <dir> holds shared/src (e.g. `git archive main shared/src | tar -x -C <dir>`), inside this checkout.
 */
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as mine from '@protoatlas/shared';
import { answerHelp } from '../scripts/usage.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node edge/bench/cpu-steps.ts [--runs 200] [--base <dir with shared/src>]

CPU time per call of modelInputRgb (500x375 -> 224) and explain (CUB-shaped distance maps), p50 and p90.`,
);

type Shared = Pick<typeof mine, 'modelInputRgb' | 'explain' | 'SERVED_BOX_SIDE'>;

/** Deterministic values in [0, 1) (a 32-bit LCG). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

function inputs() {
  const r = lcg(1);
  const W = 500;
  const H = 375;
  const picture = { data: Uint8Array.from({ length: W * H * 3 }, () => Math.floor(r() * 256)), width: W, height: H };
  const m = 2000;
  const C = 200;
  const maps = {
    data: Float32Array.from({ length: m * 14 * 14 }, () => r() * 50),
    prototypes: m,
    height: 14,
    width: 14,
    layout: 'prototype-major' as const,
  };
  // Each prototype weighs 1 on its own class (10 a class) and a little against the others.
  const lastLayer = Float32Array.from({ length: m * C }, (_, i) => (Math.floor(i / C / 10) === i % C ? 1 : -0.5 * r()));
  return { picture, maps, model: { lastLayer, numClasses: C } };
}

const cpuMs = (f: () => unknown): number => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, base: { type: 'string' } } });
  const runs = Number(values.runs ?? 200);
  const codes: [string, Shared][] = [['this checkout', mine]];
  if (values.base) {
    const dir = resolve(process.env.INIT_CWD ?? process.cwd(), values.base);
    codes.push(['base', (await import(pathToFileURL(join(dir, 'shared/src/index.ts')).href)) as Shared]);
  }
  const { picture, maps, model } = inputs();
  const steps = {
    'preprocess (upright)': (s: Shared) => s.modelInputRgb({ ...picture, channels: 3 }, 1, 224),
    'preprocess (orientation 6)': (s: Shared) => s.modelInputRgb({ ...picture, channels: 3 }, 6, 224),
    explain: (s: Shared) =>
      s.explain(maps, model, { width: 4000, height: 3000 }, { top: 3, evidence: 3, boxMaxSide: s.SERVED_BOX_SIDE }),
  };
  console.log(`CPU ms per call, p50 / p90 of ${runs} calls after 20 warm-up (Node ${process.version})`);
  for (const [name, step] of Object.entries(steps)) {
    for (let i = 0; i < 20; i++) for (const [, s] of codes) step(s);
    const times = codes.map((): number[] => []);
    for (let i = 0; i < runs; i++) codes.forEach(([, s], k) => times[k].push(cpuMs(() => step(s))));
    const cells = codes.map(
      ([label], k) => `${label} ${pct(times[k], 0.5).toFixed(2)} / ${pct(times[k], 0.9).toFixed(2)}`,
    );
    console.log(`${name.padEnd(28)}${cells.join('   ')}`);
  }
}

await main();

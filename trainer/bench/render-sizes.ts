/**
 * Sizes and speed of a prototype's pictures on real photos: per prototype the
 * source image with its box, the heatmap, the prototype crop and five
 * nearest-patch crops, as the bundle stores them (budget: <= ~30 KB each).
 *
 *   node_modules/.bin/node trainer/bench/render-sizes.ts [--images 20] [--concurrency 2]
 *       [--quality Q] [--effort E] [--size N]
 *
 * --size N stretches every photo to N x N first: a worst case for larger originals.
 *
 * Images come from $PROTOPNET_DATA/cub200/train_cropped (default ../shared/data).
 * Boxes and activation maps are random (seeded), 7x7 maps with one smooth peak.
 */
import { readdir } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Box } from '@protoatlas/shared';
import sharp from 'sharp';
import {
  PATCH_MAX_SIDE,
  WEBP_OPTIONS,
  renderCrop,
  renderHeatmap,
  renderSourceWithBox,
} from '../src/analysis/render.ts';
import { decodeImage } from '../src/data/decode.ts';
import type { RgbImage } from '../src/data/types.ts';
import { referenceDataDir } from '../src/core/data-path.ts';
import { answerHelp, benchNumber } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/render-sizes.ts [--images 20] [--concurrency 2] [--quality Q]
         [--effort E] [--size N]

Sizes and speed of a prototype's pictures rendered from real CUB photos.`,
);

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '20' },
    quality: { type: 'string' },
    effort: { type: 'string' },
    size: { type: 'string' },
    concurrency: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '5' },
  },
});
const count = benchNumber('images', args.images, { integer: true, min: 1 })!;
const concurrency = benchNumber('concurrency', args.concurrency, { integer: true, min: 1 })!;
const rounds = benchNumber('rounds', args.rounds, { integer: true, min: 1 })!;
const quality = benchNumber('quality', args.quality, { min: 0, max: 100 });
const effort = benchNumber('effort', args.effort, { integer: true, min: 0, max: 6 });
const size = benchNumber('size', args.size, { integer: true, min: 1 });
// Overrides for tuning only: the module's defaults are what the bundle uses.
if (quality !== undefined) (WEBP_OPTIONS as { quality: number }).quality = quality;
if (effort !== undefined) (WEBP_OPTIONS as { effort: number }).effort = effort;

/** mulberry32: a seeded RNG so runs are comparable. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(7);

/** A box covering 15-45% of each side, somewhere inside the image (about what a 95th-percentile box covers). */
function randomBox(img: RgbImage): Box {
  const w = Math.max(1, Math.round(img.width * (0.15 + 0.3 * rand())));
  const h = Math.max(1, Math.round(img.height * (0.15 + 0.3 * rand())));
  return { x: Math.floor(rand() * (img.width - w + 1)), y: Math.floor(rand() * (img.height - h + 1)), w, h };
}

function randomMap(n: number): Float32Array {
  const cy = rand() * n;
  const cx = rand() * n;
  return Float32Array.from({ length: n * n }, (_, i) =>
    Math.exp(-(((Math.floor(i / n) - cy) ** 2 + ((i % n) - cx) ** 2) / 4)),
  );
}

const root = join(referenceDataDir(), 'cub200/train_cropped');
const classes = (await readdir(root)).sort();
const paths: string[] = [];
for (let i = 0; i < count; i++) {
  const dir = join(root, classes[Math.floor((i * classes.length) / count)]);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.jpg')).sort();
  paths.push(join(dir, files[Math.floor(rand() * files.length)]));
}

const t0 = performance.now();
const images = await Promise.all(paths.map((p) => decodeImage(p, { size })));
const decodeMs = (performance.now() - t0) / images.length;

interface Sizes {
  source: number;
  heatmap: number;
  crop: number;
  patches: number;
}

/** One prototype: its source image with box and receptive field, heatmap, crop, and five patches from other images. */
async function renderPrototype(i: number): Promise<Sizes> {
  const img = images[i];
  const box = randomBox(img);
  const rf = {
    x: Math.max(0, box.x - 10),
    y: Math.max(0, box.y - 10),
    w: Math.min(img.width - Math.max(0, box.x - 10), box.w + 20),
    h: Math.min(img.height - Math.max(0, box.y - 10), box.h + 20),
  };
  const [source, heatmap, crop, ...patches] = await Promise.all([
    renderSourceWithBox(img, box, { receptiveField: rf }),
    renderHeatmap(img, randomMap(7), 7, 7, { box }),
    renderCrop(img, box),
    ...[1, 2, 3, 4, 5].map((k) => {
      const other = images[(i + k) % images.length];
      return renderCrop(other, randomBox(other), { maxSide: PATCH_MAX_SIDE });
    }),
  ]);
  return {
    source: source.length,
    heatmap: heatmap.length,
    crop: crop.length,
    patches: patches.reduce((a, b) => a + b.length, 0),
  };
}

const sizes = await Promise.all(images.map((_, i) => renderPrototype(i)));
const mean = (k: keyof Sizes) => sizes.reduce((a, s) => a + s[k], 0) / sizes.length;
const total = mean('source') + mean('heatmap') + mean('crop') + mean('patches');
const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
console.log(
  `${images.length} CUB photos (mean ${Math.round(images.reduce((a, m) => a + m.width, 0) / images.length)}x${Math.round(images.reduce((a, m) => a + m.height, 0) / images.length)}), WebP q${WEBP_OPTIONS.quality} effort ${WEBP_OPTIONS.effort}`,
);
console.log(
  `  source+box ${kb(mean('source'))}, heatmap ${kb(mean('heatmap'))}, crop ${kb(mean('crop'))}, 5 patches ${kb(mean('patches'))}`,
);
console.log(`  per prototype ${kb(total)}; 2,000 prototypes ${((total * 2000) / 1024 / 1024).toFixed(1)} MB`);

// Timing: `concurrency` prototypes in flight, as a caller would run them; libvips threads limited to match.
sharp.concurrency(1);
const jobs = rounds * images.length;
let next = 0;
const t1 = performance.now();
const cpu0 = process.cpuUsage();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < jobs) await renderPrototype(next++ % images.length);
  }),
);
const perProto = (performance.now() - t1) / jobs;
// CPU time (all threads) is the robust figure on a shared machine; wall time depends on the load.
const cpu = process.cpuUsage(cpu0);
const cpuPer = (cpu.user + cpu.system) / 1000 / jobs;
console.log(
  `  render ${cpuPer.toFixed(1)} ms CPU per prototype -> 2,000 on 2 idle cores in ~${((cpuPer * 2000) / 2 / 1000).toFixed(0)} s`,
);
console.log(
  `  wall ${perProto.toFixed(1)} ms per prototype (${concurrency} in flight, 1 libvips thread each, ${jobs} prototypes, load average ${loadavg()[0].toFixed(1)})`,
);
console.log(`  plus JPEG decode ${decodeMs.toFixed(1)} ms per image (6 per prototype if none are cached)`);

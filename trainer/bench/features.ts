/**
 * Feature-extraction benchmark: the whole CUB train_cropped set (original +
 * flipped) through the int8 ONNX MobileNetV2 at 224x224 into the feature
 * cache, then a reload from the cache.
 *
 *   node_modules/.bin/node trainer/bench/features.ts [--cache DIR] [--threads N]
 *       [--batch N] [--limit N] [--fresh] [--throughput]
 *
 * --throughput prints onnxruntime ms/image for batch 1/8/32 x 1/2 threads instead.
 * The data folder is $PROTOPNET_DATA (default ../shared/data beside the repo).
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { extractFeatureSets } from '../src/backbone/feature-cache.ts';
import { MIRRORED, ORIGINAL } from '../src/backbone/feature-view.ts';
import { loadOnnxBackbone } from '../src/backbone/onnx-backbone.ts';
import type { PreprocessSpec } from '../src/backbone/types.ts';
import { loadCubCropped } from '../src/data/cub-cropped.ts';
import { REPO_ROOT, referenceDataDir } from '../src/core/data-path.ts';
import { answerHelp, benchNumber } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/features.ts [--cache DIR] [--threads N] [--batch N] [--limit N]
         [--fresh] [--throughput]

Extracts CUB train_cropped features (original + flipped) into the feature cache and reloads them; --throughput
prints onnxruntime ms/image for batch 1/8/32 x 1/2 threads instead.`,
);

const { values: args } = parseArgs({
  options: {
    cache: { type: 'string', default: join(REPO_ROOT, '.cache/features') },
    threads: { type: 'string' },
    batch: { type: 'string' },
    limit: { type: 'string' },
    fresh: { type: 'boolean', default: false },
    throughput: { type: 'boolean', default: false },
  },
});
// Absent: the backbone's and the cache's defaults, every image.
const threads = benchNumber('threads', args.threads, { integer: true, min: 1 });
const batchSize = benchNumber('batch', args.batch, { integer: true, min: 1 });
const limit = benchNumber('limit', args.limit, { integer: true, min: 1 });

const IMAGENET: PreprocessSpec = { size: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
const dataDir = referenceDataDir();
const modelPath = join(dataDir, 'backbones/mobilenetv2-int8-onnx/mobilenetv2-12-int8.onnx');

if (args.throughput) await throughput();
else await extraction();

async function extraction(): Promise<void> {
  const ds = await loadCubCropped(join(dataDir, 'cub200'));
  let items = [...ds.splits.train, ...ds.splits.val, ...ds.splits.test];
  if (limit !== undefined) items = items.slice(0, limit);
  const backbone = await loadOnnxBackbone({ path: modelPath, tap: 'auto', preprocess: IMAGENET, threads });
  const workers = availableParallelism();
  console.log(
    `${items.length} images x 2 (original + flipped), ${backbone.description}; extraction on ${workers} worker threads x 1 onnxruntime thread`,
  );
  const opts = {
    views: [ORIGINAL, MIRRORED],
    cacheDir: args.cache,
    progressLabel: 'features',
    batchSize,
  };

  if (args.fresh) {
    // Drop only this extraction's cache files (found through a dry key computation).
    const { featureCacheKeys } = await import('../src/backbone/feature-key.ts');
    const keys = await featureCacheKeys(
      { backboneHash: backbone.hash, preprocess: IMAGENET, encoding: 'uint8', items },
      opts.views,
    );
    for (const key of keys) {
      await rm(join(args.cache, `${key}.feat`), { force: true });
      await rm(join(args.cache, `${key}.parts`), { recursive: true, force: true });
    }
  }

  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const sets = await extractFeatureSets(backbone, items, opts);
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const hit = sets.every((s) => s.cacheHit);
  const bytes = (await Promise.all(sets.map((s) => stat(s.path)))).reduce((a, s) => a + s.size, 0);
  const skipped = sets[0].skipped.length;
  if (hit) {
    console.log(`cache hit: loaded ${sets.length} x ${items.length} feature maps in ${secs.toFixed(2)} s`);
  } else {
    const done = items.length - Math.min(...sets.map((s) => s.resumed));
    console.log(
      `extracted ${done} images in ${secs.toFixed(1)} s wall (${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU): ${(done / secs).toFixed(1)} images/s, ${((2 * done) / secs).toFixed(1)} inferences/s`,
    );
    const tm = sets[0].timing;
    console.log(
      `  of which waiting for decodes ${(tm.decodeWaitMs / 1000).toFixed(1)} s, preprocessing + inference ${(tm.inferenceMs / 1000).toFixed(1)} s`,
    );
    if (sets.some((s) => s.resumed > 0))
      console.log(`(resumed ${Math.max(...sets.map((s) => s.resumed))} images from an interrupted run)`);
  }
  console.log(
    `skipped images: ${skipped}; store: ${sets[0].store.encoding} ${sets[0].store.shape.join('x')}; cache on disk: ${(bytes / 2 ** 20).toFixed(0)} MiB in ${args.cache}`,
  );
  console.log(`peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
  await backbone.dispose();

  if (!hit) {
    // Second pass: what the next run pays.
    const again = await loadOnnxBackbone({ path: modelPath, tap: 'auto', preprocess: IMAGENET, threads });
    const t1 = performance.now();
    const reloaded = await extractFeatureSets(again, items, { ...opts, quiet: true });
    const loadSecs = (performance.now() - t1) / 1000;
    console.log(
      `second run: cache ${reloaded.every((s) => s.cacheHit) ? 'hit' : 'MISS'}, loaded in ${loadSecs.toFixed(2)} s; peak RSS now ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
    );
    await again.dispose();
  }
  const files = await readdir(args.cache);
  if (files.some((f) => f.includes('.tmp-'))) console.log(`warning: temp files left in ${args.cache}`);
}

async function throughput(): Promise<void> {
  const rows: string[] = [];
  for (const t of threads ? [threads] : [1, 2]) {
    const bb = await loadOnnxBackbone({ path: modelPath, tap: 'auto', preprocess: IMAGENET, threads: t });
    for (const batch of [1, 8, 32]) {
      const x = Float32Array.from({ length: batch * 224 * 224 * 3 }, (_, i) => Math.sin(i * 0.001));
      await bb.extractQuantized!(x, batch);
      const reps = Math.max(3, Math.ceil(128 / batch));
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) await bb.extractQuantized!(x, batch);
      const wall = (performance.now() - t0) / reps / batch;
      const c = process.cpuUsage(c0);
      rows.push(
        `threads ${t}  batch ${String(batch).padStart(2)}  ${wall.toFixed(2)} ms/image wall  ${((c.user + c.system) / 1000 / reps / batch).toFixed(2)} ms/image CPU`,
      );
      console.log(rows.at(-1));
    }
    await bb.dispose();
  }
}

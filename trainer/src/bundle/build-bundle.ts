import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  activationBox,
  activationMap,
  cellBox,
  editCounts,
  receptiveFieldBox,
  MANIFEST_FILE,
  MANIFEST_SCHEMA_VERSION,
  parseManifest,
  singleMap,
  type Box,
  type Manifest,
  type ManifestPatchRef,
  type ManifestPrototype,
  type ManifestVersion,
} from '@protoatlas/shared';
import { nearestPatches, type PatchHit, sourceImageExclusions } from '../stages/nearest-patches.ts';
import { cachedNearestPatches, trainNearestKey } from '../stages/nearest-cache.ts';
import { embeddingDigest, similarityCacheDir } from '../stages/similarity-cache.ts';
import { reviewCandidates, type CandidatePrototype } from '../analysis/review-candidates.ts';
import { renderCrop, renderHeatmap, renderSourceWithBox } from '../analysis/render.ts';
import type { DatasetItem, SplitName } from '../data/types.ts';
import { loadModel, readModelJson, type ModelJson } from '../model/model-file.ts';
import { prepareData, resolveDataDir, type PreparedData } from '../model/prepare-data.ts';
import { Progress } from '../core/progress.ts';
import { exists, readJson, runPaths } from '../core/run-dir.ts';
import { accuracy, predict, type Accuracy } from '../stages/predict.ts';
import { lastLayerSparsity } from '../stages/last-layer.ts';
import { initBackend } from '../tf/backend.ts';
import { backboneReceptiveField } from '../backbone/receptive-field.ts';
import { snapshotSplits } from '../stages/feature-snapshot.ts';
import { backboneWeightsPath, bundledConfig, copyBackboneFiles } from './backbone-files.ts';
import { exportBundleOnnx } from './bundle-onnx.ts';
import { computeExplanationMetrics } from './explanation-metrics.ts';
import { writeDirectoryAtomic } from '../core/atomic.ts';
import { sha256File } from '../core/sha256.ts';
import { fileRecord, linkTree, mapLimit } from './files.ts';
import { integrityList } from './integrity.ts';
import { ImageCache } from '../data/image-cache.ts';
import { backboneProvenance, datasetProvenance, displayName } from './provenance.ts';
import { sourceDistanceMaps } from './source-maps.ts';
import { bundleBaseline, withPairedDifference } from './bundle-baseline.ts';

export interface BuildBundleOptions {
  /** Run directory (with model/) of a finished training run. */
  run: string;
  /** Dataset folder; default: the one the run trained on (summary.json), or the built-in synthetic set. */
  data?: string | null;
  /** Bundle directory; default <run>/bundle. */
  out?: string;
  nearest?: number;
  partMetrics?: boolean;
  quiet?: boolean;
  /**
   * The parent bundle of an edit that moved no prototype (drop, relabel): its
   * pictures, boxes and nearest patches are reused instead of recomputed.
   */
  reuse?: { dir: string; manifest: Manifest };
  /**
   * The caller's prepared data (an edit's), used as is instead of reading the
   * features again; the bundle disposes of its backbone. Items without features
   * (prepareItems) do only with `reuse` and `valAccuracy`: nothing then reads a feature.
   */
  prepared?: { data: PreparedData; valAccuracy?: Accuracy | null };
  /**
   * A black-box baseline's directory (`npm run baseline`) to compare the model with on its model card,
   * checked to be scored on the run's validation images and then kept in the run; default: the one
   * kept earlier, else the run's own frozen-feature probe.
   */
  baseline?: string | null;
}

export interface BundleReport {
  dir: string;
  prototypes: number;
  pruned: number;
  imageBytes: number;
  totalBytes: number;
  seconds: Record<string, number>;
  metrics: Manifest['metrics'];
}

const log = (quiet: boolean | undefined, msg: string) => {
  if (!quiet) process.stderr.write(`${msg}\n`);
};

/** Sizes of the pictures (longest side, px): chosen so 2,000 prototypes stay under ~60 MB. */
export const IMAGE_SIDES = { crop: 128, source: 224, heatmap: 224, nearest: 96 };

/**
 * Build a run's model bundle: push artefacts (boxes, crops, heatmaps), global
 * analysis (nearest training and validation patches), explanation metrics and
 * a validated manifest, written atomically.
 */
export async function buildBundle(opts: BuildBundleOptions): Promise<BundleReport> {
  const t0 = Date.now();
  const seconds: Record<string, number> = {};
  const lap = (name: string, since: number) => (seconds[name] = (Date.now() - since) / 1000);
  const paths = runPaths(opts.run);
  const { json, config } = await readModelJson(opts.run);
  if ((json.head.similarityTopK ?? 1) > 1)
    throw new Error(
      `${opts.run}: the model averages each similarity over ${json.head.similarityTopK} patches (head.similarityTopK), which the bundle's ONNX model and explanations do not compute; evaluate it with \`npm run evaluate --workspace trainer\` instead`,
    );
  if (!json.prototypes)
    throw new Error(
      `${opts.run}: the model has no push records (push is disabled or training has not finished); a bundle needs pushed prototypes`,
    );
  const backend = await initBackend(config.backend, { quiet: true });
  const loaded = await loadModel(opts.run);
  const head = loaded.head;
  const summary = (await exists(paths.summary))
    ? await readJson<{
        dataset?: { root?: string };
        baseline?: { top1: number; top5: number } | null;
        final?: { test?: { n: number; top1: number; top5: number } | null };
      }>(paths.summary)
    : null;
  const dataRoot = opts.data ?? summary?.dataset?.root ?? (await resolveDataDir(config, null, opts.quiet));
  // Originals only: pictures and neighbours never use the flipped copies.
  const splits: SplitName[] = config.data.metricsPerClass > 0 ? ['train', 'val', 'metrics'] : ['train', 'val'];
  const given = opts.prepared;
  if (given && !given.data.sources.train && !(opts.reuse && given.valAccuracy !== undefined))
    throw new Error('buildBundle: prepared data without features needs `reuse` and `valAccuracy`');
  const data =
    given?.data ??
    (await prepareData({ ...config, data: { ...config.data, flip: false } }, dataRoot, {
      quiet: opts.quiet,
      splits,
      backboneWeights: loaded.backboneWeights,
    }));
  checkClasses(json, data, dataRoot);
  const baseline = await bundleBaseline(
    opts.run,
    opts.baseline,
    data.itemsBySplit.val.map((it) => it.id),
    summary?.baseline,
  );
  // A fine-tuned backbone runs on images: compute each image's features once, over every core.
  let t = Date.now();
  await snapshotSplits(data, ['train', 'val'], {
    threads: config.trainThreads,
    backend: backend.name,
    head,
    quiet: opts.quiet,
  });
  lap('features', t);
  const out = opts.out ?? paths.bundle;
  const m = head.numPrototypes;
  const [H, W] = data.featureShape;
  // Where one prototype's H x W distance map activates, in an image of w x h, under the model's epsilon.
  const boxOf = (map: ArrayLike<number>, w: number, h: number): Box =>
    activationBox(singleMap(map, H, W), 0, w, h, { eps: head.epsilon });
  const trainItems = data.itemsBySplit.train;
  const valItems = data.itemsBySplit.val;
  const k = opts.nearest ?? config.bundle.nearest;
  const reuse = opts.reuse ?? null;
  const parentGrid = reuse?.manifest.featureGrid;
  if (reuse && (reuse.manifest.prototypes.length !== m || parentGrid!.height !== H || parentGrid!.width !== W)) {
    const what = `this model's ${m} prototypes on a ${H}x${W} grid`;
    throw new Error(`${reuse.dir} does not describe ${what}; it cannot be reused`);
  }

  // Push records name images by id; the dataset order may differ from training time.
  const idIndex = new Map(trainItems.map((it, i) => [it.id, i]));
  const sourceItem = json.prototypes.map((p) => (p.imageId !== null ? (idIndex.get(p.imageId) ?? -1) : -1));
  const missing = sourceItem.filter((i, j) => i < 0 && json.prototypes![j].imageId !== null).length;
  if (missing)
    log(
      opts.quiet,
      `warning: ${missing} prototype source image(s) are not in ${dataRoot}; their pictures are left out`,
    );
  const pruned = new Array<boolean>(m).fill(false);
  const prunedReason = new Array<string | null>(m).fill(null);
  for (const p of json.pruned ?? []) {
    pruned[p.prototype] = true;
    prunedReason[p.prototype] = p.reason;
  }

  t = Date.now();
  let trainHits: PatchHit[][] = [];
  let valHits: PatchHit[][] = [];
  let srcMaps: (Float32Array | null)[] = [];
  if (!reuse) {
    const train = data.sources.train!;
    const val = data.sources.val!;
    const exclude = sourceImageExclusions(sourceItem);
    // The prune phase stored this search (with at least as many neighbours) when it ran on this head.
    const search = await cachedNearestPatches({
      dir: similarityCacheDir(config),
      key: trainNearestKey(embeddingDigest(head, data.trainableBackbone?.getWeights() ?? null), config, data, exclude),
      k,
      compute: (kk) => nearestPatches(head, train, kk, { exclude, quiet: opts.quiet, label: 'nearest train patches' }),
    });
    trainHits = search.hits;
    if (search.cached) log(opts.quiet, "nearest train patches: read from the prune phase's search");
    valHits = val.n
      ? nearestPatches(head, val, k, { quiet: opts.quiet, label: 'nearest val patches' })
      : Array.from({ length: m }, () => []);
    srcMaps = sourceDistanceMaps(head, train, sourceItem);
  }
  lap('globalAnalysis', t);

  t = Date.now();
  const sizeCache = new ImageCache();
  const sourceBoxes = await Promise.all(
    json.prototypes.map(async (_, j) => {
      if (reuse) {
        const src = reuse.manifest.prototypes[j].source;
        return src && sourceItem[j] >= 0 ? { item: sourceItem[j], box: src.box } : null;
      }
      const map = srcMaps[j];
      if (sourceItem[j] < 0 || !map) return null;
      const size = await sizeCache.size(trainItems[sourceItem[j]]);
      return {
        item: sourceItem[j],
        box: boxOf(map, size.width, size.height),
      };
    }),
  );
  const neighbourClasses = reuse
    ? reuse.manifest.prototypes.map((p) => p.nearest.train.map((n) => n.classId))
    : trainHits.map((hits) => hits.map((h) => trainItems[h.item].label));
  // A prototype that kept its class keeps its part metrics (they depend only on its embedding and class).
  const known = reuse
    ? {
        parts: reuse.manifest.prototypes.map((p, j) => (p.classId === head.protoClass[j] ? p.parts : undefined)),
        measuredOn: reuse.manifest.metrics.explanation.measuredOn ?? null,
      }
    : undefined;
  const partMetrics = opts.partMetrics ?? config.bundle.partMetrics;
  const explanation = await computeExplanationMetrics({
    head,
    data,
    sourceBoxes,
    neighbourClasses,
    pruned,
    partMetrics,
    known,
    quiet: opts.quiet,
  });
  lap('metrics', t);

  const nearestCells = reuse
    ? reuse.manifest.prototypes.map((p) =>
        p.nearest.train.map(({ imageId, classId, patch }) => ({ imageId, classId, ...patch })),
      )
    : trainHits.map((hits) =>
        hits.map((h) => {
          const cell = { row: Math.floor(h.patch / W), col: h.patch % W };
          return { imageId: trainItems[h.item].id, classId: trainItems[h.item].label, ...cell };
        }),
      );
  const candidates: CandidatePrototype[] = json.prototypes.map((rec, j) => ({
    classId: head.protoClass[j],
    pruned: pruned[j],
    purity: Number.isNaN(explanation.purityPerPrototype[j]) ? null : explanation.purityPerPrototype[j],
    source: rec.imageId !== null && rec.row >= 0 ? { imageId: rec.imageId, row: rec.row, col: rec.col } : null,
    nearest: nearestCells[j],
    noPart: explanation.partsPerPrototype[j]?.noPart ?? null,
    birdShare: explanation.birdShare[j],
  }));
  const vectors = head.prototypes.dataSync() as Float32Array;
  const names = data.dataset.classes.map(displayName);
  const review = reviewCandidates(candidates, vectors, head.prototypeDim, { height: H, width: W }, names);
  const lineage = json.lineage ?? null;
  // The version names the weights, so it is known before anything is written.
  const weightsSha = await sha256File(join(paths.model, 'weights.bin'));
  const createdAt = new Date().toISOString();
  const version = `${createdAt.slice(0, 10).replace(/-/g, '.')}+${weightsSha.slice(0, 8)}`;

  const receptiveField = await backboneReceptiveField(config.backbone, await backboneWeightsPath(config));
  const valPredictions =
    given?.valAccuracy === undefined && data.sources.val?.n ? await predict(head, data.sources.val) : null;
  const valAcc = given?.valAccuracy !== undefined ? given.valAccuracy : valPredictions && accuracy(valPredictions);
  const lastLayer = head.lastLayer.dataSync() as Float32Array;
  const C = head.spec.numClasses;
  let imageBytes = 0;
  let metrics: Manifest['metrics'] | undefined;

  await writeDirectoryAtomic(out, async (tmp) => {
    t = Date.now();
    const cache = new ImageCache();
    const digits = String(m - 1).length;
    if (reuse) {
      imageBytes = await linkTree(join(reuse.dir, 'prototypes'), join(tmp, 'prototypes'));
    }
    const progress = new Progress({ label: 'prototype pictures', total: m, unit: 'proto', quiet: opts.quiet });
    const prototypes = await mapLimit(
      Array.from({ length: m }, (_, j) => j),
      4,
      async (j): Promise<ManifestPrototype> => {
        const dir = `prototypes/${String(j).padStart(digits, '0')}`;
        await mkdir(join(tmp, dir), { recursive: true });
        const write = async (name: string, bytes: Uint8Array) => {
          await writeFile(join(tmp, dir, name), bytes);
          imageBytes += bytes.length;
          return `${dir}/${name}`;
        };
        const rec = json.prototypes![j];
        const parts = explanation.partsPerPrototype[j];
        // The new version's entries were written before its name was known ("next").
        const history = (lineage?.history[j] ?? []).map((h) => (h.version === 'next' ? { ...h, version } : h));
        const extra: Partial<ManifestPrototype> = {
          ...(parts ? { parts } : {}),
          review: review[j],
          ...(history.length ? { history } : {}),
        };
        const common = {
          id: j,
          classId: head.protoClass[j],
          // 9 significant digits round-trip float32 exactly and keep the manifest compact.
          weights: Array.from(lastLayer.subarray(j * C, (j + 1) * C), (w) => Number(w.toPrecision(9))),
          pruned: pruned[j],
          prunedReason: prunedReason[j],
          purity: Number.isNaN(explanation.purityPerPrototype[j]) ? null : explanation.purityPerPrototype[j],
        };
        if (reuse) {
          const old = reuse.manifest.prototypes[j];
          progress.tick(1);
          return { ...common, source: old.source, files: old.files, nearest: old.nearest, ...extra };
        }
        let source: ManifestPrototype['source'] = null;
        let files: ManifestPrototype['files'] = null;
        if (sourceItem[j] >= 0 && srcMaps[j]) {
          const item = trainItems[sourceItem[j]];
          const img = await cache.image(item);
          const maps = singleMap(srcMaps[j]!, H, W);
          const box = boxOf(srcMaps[j]!, img.width, img.height);
          const patchBox = cellBox(rec.row, rec.col, H, W, img.width, img.height);
          const rfBox = receptiveField
            ? receptiveFieldBox(receptiveField, rec.row, rec.col, data.preprocess.size, img.width, img.height)
            : null;
          // Deep backbones see (nearly) the whole image from every cell: drawing that says nothing.
          const drawRf = rfBox && rfBox.w * rfBox.h < 0.9 * img.width * img.height ? rfBox : null;
          files = {
            crop: await write('crop.webp', await renderCrop(img, box, { maxSide: IMAGE_SIDES.crop })),
            source: await write(
              'source.webp',
              await renderSourceWithBox(img, box, { maxSide: IMAGE_SIDES.source, receptiveField: drawRf }),
            ),
            heatmap: await write(
              'heatmap.webp',
              await renderHeatmap(img, activationMap(maps, 0, head.epsilon), H, W, {
                maxSide: IMAGE_SIDES.heatmap,
                box,
              }),
            ),
          };
          source = {
            imageId: item.id,
            width: img.width,
            height: img.height,
            patch: { row: rec.row, col: rec.col },
            pushDistance: Math.max(0, rec.distance),
            box,
            patchBox,
            receptiveField: rfBox,
          };
        }
        const nearTrain: ManifestPatchRef[] = [];
        for (const [r, hit] of trainHits[j].entries()) {
          const item = trainItems[hit.item];
          const img = await cache.image(item);
          const box = boxOf(hit.map, img.width, img.height);
          const file = await write(
            `nearest-${r + 1}.webp`,
            await renderCrop(img, box, { maxSide: IMAGE_SIDES.nearest }),
          );
          nearTrain.push(patchRef(item, hit, box, img, W, file));
        }
        const nearVal: ManifestPatchRef[] = [];
        for (const hit of valHits[j]) {
          const item = valItems[hit.item];
          const size = await cache.size(item);
          nearVal.push(patchRef(item, hit, boxOf(hit.map, size.width, size.height), size, W, null));
        }
        progress.tick(1);
        return { ...common, source, files, nearest: { train: nearTrain, val: nearVal }, ...extra };
      },
    );
    progress.finish();
    lap('pictures', t);

    t = Date.now();
    await mkdir(join(tmp, 'model'), { recursive: true });
    const backboneFiles = await copyBackboneFiles(config, tmp);
    const modelJson = JSON.parse(await readFile(join(paths.model, 'model.json'), 'utf8')) as ModelJson;
    await writeFile(
      join(tmp, 'model', 'model.json'),
      `${JSON.stringify({ ...modelJson, config: bundledConfig(config, backboneFiles) }, null, 2)}\n`,
    );
    await copyFile(join(paths.model, 'weights.bin'), join(tmp, 'model', 'weights.bin'));
    if ((await sha256File(join(tmp, 'model', 'weights.bin'))) !== weightsSha) {
      throw new Error(`${paths.model}/weights.bin changed while the bundle was being built`);
    }
    const tOnnx = Date.now();
    // A model that cannot be exported still gets its atlas; the edge and widget then say why they cannot run it.
    const onnx = await exportBundleOnnx(opts.run, tmp, { backend: config.backend, dataDir: dataRoot }).then(
      (r) => r.onnx,
      (e: unknown) => {
        log(opts.quiet, `warning: no ONNX export in this bundle: ${e instanceof Error ? e.message : String(e)}`);
        return null;
      },
    );
    lap('onnx', tOnnx);
    const backboneRecords = await Promise.all(backboneFiles.map((f) => fileRecord(tmp, f)));
    const backboneDescription = (data.frozenBackbone ?? data.trainableBackbone)!.description;
    const modelId = `${config.preset.toLowerCase().replace(/[^a-z0-9._-]+/g, '-')}-${weightsSha.slice(0, 8)}`;
    const valMetrics = valAcc ? { top1: valAcc.top1, top5: valAcc.top5, n: valAcc.n } : null;
    const self: ManifestVersion | null = lineage
      ? {
          id: modelId,
          version,
          createdAt,
          parent: lineage.parent.version,
          edits: editCounts(lineage.edits),
          val: valMetrics,
          explanation: explanation.summary,
          livePrototypes: pruned.filter((p) => !p).length,
        }
      : null;
    const manifest: Manifest = {
      schema: 'protoatlas-bundle',
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      model: {
        id: modelId,
        version,
        createdAt,
        preset: config.preset,
        description: `ProtoPNet (${m} prototypes, ${C} classes) on ${config.backbone.kind === 'small-cnn' ? 'a small CNN trained from scratch' : (config.backbone.path ?? config.backbone.url ?? config.backbone.kind).split('/').pop()}`,
        ...(lineage ? { parent: { id: lineage.parent.id, version: lineage.parent.version } } : {}),
      },
      classes: data.dataset.classes.map((key, id) => ({ id, key, name: displayName(key) })),
      preprocessing: {
        size: data.preprocess.size,
        mean: data.preprocess.mean,
        std: data.preprocess.std,
        resize: 'stretch',
        layout: 'NHWC',
      },
      featureGrid: { height: H, width: W, channels: data.featureShape[2] },
      prototypeDim: head.prototypeDim,
      similarityEpsilon: head.epsilon,
      receptiveField,
      prototypes,
      files: {
        trainerModel: { json: 'model/model.json', weights: 'model/weights.bin' },
        backbone: backboneRecords,
        onnx,
        integrity: await integrityList(tmp),
      },
      metrics: {
        val: valMetrics,
        test: summary?.final?.test
          ? { top1: summary.final.test.top1, top5: summary.final.test.top5, n: summary.final.test.n }
          : null,
        baseline: baseline && withPairedDifference(baseline, valPredictions),
        explanation: explanation.summary,
        pruning: json.pruning
          ? {
              k: json.pruning.k,
              threshold: json.pruning.threshold,
              applied: json.pruning.applied,
              pruned: json.pruning.applied ? json.pruning.candidates.length : 0,
              before: json.pruning.before,
              after: json.pruning.after,
            }
          : null,
        wrongClassNearZero: lastLayerSparsity(head),
        wrongClassZero: lastLayerSparsity(head, 0),
      },
      curves: await readCurves(paths.metrics),
      backbone: backboneProvenance(config, backboneDescription, backboneRecords[0]?.sha256 ?? weightsSha),
      dataset: {
        layout: data.dataset.layout,
        ...datasetProvenance(data.dataset.layout),
        train: trainItems.length,
        val: valItems.length,
        test: data.dataset.splits.test.length,
      },
      ...(lineage && self ? { lineage: [...lineage.chain, self] } : {}),
    };
    // Refuse to write a bundle that its own readers would refuse.
    parseManifest(JSON.parse(JSON.stringify(manifest)), `${out}/${MANIFEST_FILE}`);
    await writeFile(join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest)}\n`);
    lap('files', t);
    metrics = manifest.metrics;
  });
  await data.frozenBackbone?.dispose();
  seconds.total = (Date.now() - t0) / 1000;
  return {
    dir: out,
    prototypes: m,
    pruned: pruned.filter(Boolean).length,
    imageBytes,
    totalBytes: await directoryBytes(out),
    seconds,
    metrics: metrics!,
  };
}

function patchRef(
  item: DatasetItem,
  hit: PatchHit,
  box: Box,
  size: { width: number; height: number },
  gridW: number,
  file: string | null,
): ManifestPatchRef {
  return {
    imageId: item.id,
    classId: item.label,
    width: size.width,
    height: size.height,
    patch: { row: Math.floor(hit.patch / gridW), col: hit.patch % gridW },
    distance: Math.max(0, hit.distance),
    box,
    file,
  };
}

function checkClasses(json: ModelJson, data: PreparedData, root: string): void {
  const ds = data.dataset.classes;
  if (ds.length !== json.classes.length || ds.some((c, i) => c !== json.classes[i])) {
    throw new Error(
      `the dataset at ${root} has ${ds.length} classes that do not match the model's ${json.classes.length} (first: "${json.classes[0]}" vs "${ds[0]}"); pass --data <the dataset the model was trained on>`,
    );
  }
}

/** Training curves from the run's metrics.jsonl (one point per epoch). */
async function readCurves(path: string): Promise<Manifest['curves']> {
  if (!(await exists(path))) return [];
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .map((r) => ({
      stage: String(r.stage),
      epoch: Number(r.epoch) || 0,
      loss: num(r.loss),
      trainAccuracy: num(r.trainAccuracy),
      valTop1: num(r.valTop1),
      valTop5: num(r.valTop5),
    }));
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  }
  return total;
}

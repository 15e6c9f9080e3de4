/**
 * Apply an edits file to a finished run and write a new run directory: a new
 * model (recording its parent and the edits) and its bundle. The parent run is
 * never changed. Drop and relabel refit the last layer (stage 3) on
 * similarities; forbid/keep first fine-tune add-on and prototypes with the
 * forgetting/remembering terms, then re-push every prototype.
 */
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  checkEdits,
  editCounts,
  parseEdits,
  type EditAction,
  type EditsFile,
  type Manifest,
  type ManifestVersion,
} from '@protoatlas/shared';
import { buildBundle, type BundleReport } from '../bundle/build-bundle.ts';
import { sha256File } from '../core/sha256.ts';
import { readBundle } from '../bundle/read-bundle.ts';
import { displayName } from '../bundle/provenance.ts';
import { initLastLayer } from '../head/last-layer.ts';
import { loadModel, readModelJson, saveModel, type ModelLineage } from '../model/model-file.ts';
import { prepareData, prepareItems, resolveDataDir, type PreparedData } from '../model/prepare-data.ts';
import { loadPartCandidates, mergeExclusions } from '../stages/part-candidates.ts';
import { exists, readJson, runPaths, writeJson } from '../core/run-dir.ts';
import { Rng } from '../core/rng.ts';
import type { TrainConfig } from '../config/config.ts';
import type { ProtoHead } from '../head/proto-head.ts';
import { snapshotSplits } from '../stages/feature-snapshot.ts';
import { startGradPoolFor } from '../stages/grad-pool.ts';
import { DEFAULT_FORGET, forgetConcepts, type ForgetEpoch, type ForgetOptions } from '../stages/forget-concepts.ts';
import { computeSimilarities } from '../stages/last-layer.ts';
import { accuracy, predict, type Accuracy } from '../stages/predict.ts';
import { pushPrototypes, type PushRecord } from '../stages/push.ts';
import { refitLastLayer, type Similarities } from '../stages/refit-last-layer.ts';
import {
  cachedSimilarities,
  loadSimilarities,
  runSimilarityKeys,
  similarityCacheDir,
} from '../stages/similarity-cache.ts';
import { initBackend } from '../tf/backend.ts';
import * as tf from '@tensorflow/tfjs-core';
import { patchFeatures, resolvePatches, type SplitFeatures } from './concept-features.ts';
import { conceptBestMatch } from './concept-match.ts';

export interface ApplyEditsOptions {
  /** The parent run directory (with model/ and bundle/). */
  run: string;
  /** Path of the edits file, or the parsed file. */
  edits: string | EditsFile;
  /** The new run directory (must not hold a model yet). */
  out: string;
  data?: string | null;
  forget?: Partial<ForgetOptions>;
  /**
   * The last-layer refit's rate and epochs, instead of the run's stage 3 settings: dropping many prototypes
   * leaves the remaining ones' weights far from where they should be, and stage 3's small steps move them little.
   */
  refit?: { lr?: number; epochs?: number };
  /** Apply even when the edits file names another model version. */
  force?: boolean;
  /** Do not build the bundle (tests of the model alone). */
  skipBundle?: boolean;
  quiet?: boolean;
}

/** What a version scored: the figures reported before and after an edit. */
export interface VersionFigures {
  val: { top1: number; top5: number; n: number } | null;
  test: { top1: number; top5: number; n: number } | null;
  explanation: Manifest['metrics']['explanation'] | null;
  livePrototypes: number;
}

export interface ConceptMatchChange {
  before: number[];
  after: number[];
}

export interface EditReport {
  out: string;
  parent: { id: string; version: string };
  version: string | null;
  counts: Record<EditAction, number>;
  before: VersionFigures;
  after: VersionFigures;
  forget: ForgetEpoch[] | null;
  /** Prototypes whose source patch changed at the re-push. */
  moved: number;
  /** The training similarities came from the cache (no pass over the data). */
  similaritiesCached: boolean;
  /** Forbid/keep: per concept patch, the highest similarity any live prototype reaches on it, before and after. */
  concepts: { forbidden: ConceptMatchChange | null; kept: ConceptMatchChange | null } | null;
  seconds: Record<string, number>;
  /** CPU seconds of the whole process (every thread) during the edit: what load on the machine does not inflate. */
  cpuSeconds: number;
  bundle: BundleReport | null;
}

const log = (quiet: boolean | undefined, msg: string) => {
  if (!quiet) process.stderr.write(`${msg}\n`);
};

const acc = (a: Accuracy | null) => (a ? { top1: a.top1, top5: a.top5, n: a.n } : null);

export async function applyEdits(opts: ApplyEditsOptions): Promise<EditReport> {
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const seconds: Record<string, number> = {};
  const lap = (name: string, since: number) => (seconds[name] = (Date.now() - since) / 1000);
  const parentPaths = runPaths(opts.run);
  const outPaths = runPaths(opts.out);
  if (resolve(opts.run) === resolve(opts.out))
    throw new Error(`--out must be a new run directory: edits never change ${opts.run} in place`);
  if (await exists(join(outPaths.model, 'model.json')))
    throw new Error(`${opts.out} already holds a model; choose a new --out (edits never overwrite a version)`);

  const { json, config } = await readModelJson(opts.run);
  if (!json.prototypes)
    throw new Error(`${opts.run}: the model has no push records (training has not finished); edit a finished run`);
  if (!(await exists(join(parentPaths.bundle, 'manifest.json')))) {
    throw new Error(
      `${opts.run} has no bundle (${parentPaths.bundle}); build it first: npm run bundle --workspace trainer -- ` +
        `${opts.run}`,
    );
  }
  const parent = (await readBundle(parentPaths.bundle)).manifest;
  const parentSha = await sha256File(join(parentPaths.model, 'weights.bin'));
  const bundleSha = await sha256File(join(parentPaths.bundle, parent.files.trainerModel.weights));
  if (parentSha !== bundleSha)
    throw new Error(
      `${parentPaths.bundle} was built from other weights than ${parentPaths.model}; rebuild it (npm run bundle ` +
        `--workspace trainer -- ${opts.run})`,
    );

  const editsSource = typeof opts.edits === 'string' ? opts.edits : 'edits';
  const edits =
    typeof opts.edits === 'string'
      ? parseEdits(await readJsonFile(opts.edits), opts.edits)
      : parseEdits(opts.edits, editsSource);
  const m = json.prototypeClass.length;
  const C = json.classes.length;
  checkEdits(edits, { prototypes: m, classes: C, grid: parent.featureGrid }, editsSource);
  if (
    edits.model &&
    (edits.model.id !== parent.model.id || edits.model.version !== parent.model.version) &&
    !opts.force
  ) {
    throw new Error(
      `${editsSource} was made for model ${edits.model.id} version ${edits.model.version}, but ${opts.run} is ` +
        `${parent.model.id} version ${parent.model.version}; prototype ids may mean other prototypes. Pass --force ` +
        `to apply anyway`,
    );
  }
  const counts = editCounts(edits);
  const hasConcepts = counts.forbid + counts.keep > 0;

  const backend = await initBackend(config.backend, { quiet: true });
  const loaded = await loadModel(opts.run);
  const head = loaded.head;
  const summary = (await exists(parentPaths.summary))
    ? await readJson<Record<string, unknown> & { dataset?: { root?: string }; final?: Record<string, unknown> }>(
        parentPaths.summary,
      )
    : null;
  const dataRoot = opts.data ?? summary?.dataset?.root ?? (await resolveDataDir(config, null, opts.quiet));
  let t = Date.now();
  // Drop and relabel leave the embedding alone: with cached similarities they need no feature.
  const cached = hasConcepts ? null : await cachedInputs(config, dataRoot, head, opts.quiet);
  const data =
    cached?.data ??
    (await prepareData(config, dataRoot, {
      quiet: opts.quiet,
      splits: config.data.metricsPerClass > 0 ? ['train', 'val', 'test', 'metrics'] : ['train', 'val', 'test'],
      backboneWeights: loaded.backboneWeights,
    }));
  if (data.dataset.classes.join('\n') !== json.classes.join('\n')) {
    throw new Error(
      `the dataset at ${dataRoot} has other classes than the model (${data.dataset.classes.length} vs ` +
        `${json.classes.length}); pass --data <the dataset the model was trained on>`,
    );
  }
  // A fine-tuned backbone is fixed here: its features are computed once per image.
  await snapshotSplits(data, ['train', 'val', 'test'], {
    threads: config.trainThreads,
    backend: backend.name,
    head,
    quiet: opts.quiet,
  });
  lap('features', t);
  const trainItems = data.itemsBySplit.train;

  const before: VersionFigures = {
    val: parent.metrics.val,
    test: parent.metrics.test,
    explanation: parent.metrics.explanation,
    livePrototypes: parent.prototypes.filter((p) => !p.pruned).length,
  };
  const history: ModelLineage['history'] = {};
  parent.prototypes.forEach((p) => p.history?.length && (history[p.id] = [...p.history]));
  const note = (j: number, action: ModelLineage['history'][string][number]['action'], text: string) =>
    (history[j] ??= []).push({ version: 'next', action, note: text });

  // Drops and relabels.
  const pruned = new Map<number, string>(json.pruned.map((p) => [p.prototype, p.reason]));
  const rows = head.lastLayer.dataSync().slice() as Float32Array;
  for (const e of edits.edits) {
    if (e.action === 'drop') {
      pruned.set(e.prototype, `dropped by an edit: ${e.reason}`);
      note(e.prototype, 'drop', e.reason);
    } else if (e.action === 'relabel') {
      const from = head.protoClass[e.prototype];
      head.protoClass[e.prototype] = e.classId;
      // Start the refit from the paper's initial row for its new class.
      const init = initLastLayer(Int32Array.of(e.classId), C, 1, config.head.incorrectClassWeight);
      rows.set(init.data, e.prototype * C);
      note(
        e.prototype,
        'relabel',
        `moved from ${displayName(json.classes[from])} to ` +
          `${displayName(json.classes[e.classId])}${e.note ? `: ${e.note}` : ''}`,
      );
    }
  }
  head.lastLayer.assign(tf.tensor2d(rows, [m, C]));
  const removed = Array.from({ length: m }, (_, j) => pruned.has(j));
  const rng = new Rng(config.seed + 1);

  // Forbid / keep: fine-tune with the concept terms, then re-push.
  let forget: ForgetEpoch[] | null = null;
  const idIndex = new Map(trainItems.map((it, i) => [it.id, i]));
  let push: PushRecord[] = json.prototypes.map((p) => ({
    ...p,
    item: p.imageId !== null ? (idIndex.get(p.imageId) ?? -1) : -1,
  }));
  let moved = 0;
  let concepts: EditReport['concepts'] = null;
  if (hasConcepts) {
    t = Date.now();
    const train = data.sources.train!;
    const val = data.sources.val!;
    const splits: SplitFeatures[] = [
      { name: 'train', items: trainItems, source: train },
      { name: 'val', items: data.itemsBySplit.val, source: val },
    ];
    const forbidPatches = resolvePatches(
      edits.edits.flatMap((e) => (e.action === 'forbid' ? e.patches : [])),
      splits,
      'forbid',
    );
    const keepPatches = resolvePatches(
      edits.edits.flatMap((e) => (e.action === 'keep' ? e.patches : [])),
      splits,
      'keep',
    );
    const options: ForgetOptions = {
      ...DEFAULT_FORGET,
      ...opts.forget,
      lr: { ...DEFAULT_FORGET.lr, ...opts.forget?.lr },
    };
    log(
      opts.quiet,
      `forget: ${forbidPatches.length} forbidden and ${keepPatches.length} kept patch(es), ${options.steps} steps ` +
        `of ${options.batchSize} images`,
    );
    const forbidden = forbidPatches.length ? patchFeatures(forbidPatches, splits) : null;
    const keep = keepPatches.length ? patchFeatures(keepPatches, splits) : null;
    const bestMatch = (c: typeof forbidden) => (c ? conceptBestMatch(head, removed, c) : null);
    const matchBefore = { forbidden: bestMatch(forbidden), kept: bestMatch(keep) };
    // The gradient threads of training, over the same shared features.
    const { pool, why } = await startGradPoolFor(data, {
      threads: config.trainThreads,
      backend: backend.name,
      head,
    });
    log(opts.quiet, `forget: ${pool?.threads ?? 1} gradient thread(s) (${why})`);
    try {
      forget = await forgetConcepts({
        head,
        train,
        // The forgetting fine-tune has no baseline teacher, and relabelled classes may hold unequal numbers of
        // prototypes (no orthogonality groups).
        loss: { ...config.loss, distillation: 0, orthogonality: 0 },
        forbidden,
        keep,
        removed,
        options,
        rng,
        quiet: opts.quiet,
        pool,
      });
    } finally {
      await pool?.close();
    }
    lap('forget', t);
    t = Date.now();
    // No prototype may land on a forbidden patch.
    const exclude = new Map<number, Set<number>>();
    const W = data.featureShape[1];
    for (const p of forbidPatches)
      if (p.split === 'train')
        (exclude.get(p.item) ?? exclude.set(p.item, new Set()).get(p.item)!).add(p.row * W + p.col);
    // The model's own push restriction (push.partRadius) holds for the re-push too.
    const onParts =
      config.push.partRadius === null
        ? null
        : await loadPartCandidates(data.dataset.root, trainItems, {
            height: data.featureShape[0],
            width: W,
            inputSize: data.preprocess.size,
            radius: config.push.partRadius,
          });
    const pushed = await pushPrototypes(head, train, {
      quiet: opts.quiet,
      exclude: onParts ? mergeExclusions(exclude, onParts.exclude) : exclude,
    });
    for (const r of pushed) {
      const was = push[r.prototype];
      if (was.item !== r.item || was.row !== r.row || was.col !== r.col) {
        moved++;
        note(
          r.prototype,
          'repush',
          `re-pushed after the concept edits: now ${r.item >= 0 ? trainItems[r.item].id : 'no image'} cell ` +
            `(${r.row}, ${r.col})`,
        );
      }
    }
    push = pushed;
    concepts = {
      forbidden: pair(matchBefore.forbidden, bestMatch(forbidden)),
      kept: pair(matchBefore.kept, bestMatch(keep)),
    };
    for (const e of edits.edits) {
      if ((e.action === 'forbid' || e.action === 'keep') && e.fromPrototype !== undefined) {
        note(
          e.fromPrototype,
          e.action,
          `${e.action === 'forbid' ? 'forbade' : 'kept'} its concept "${e.concept}" (${e.patches.length} ` +
            `patches)${e.note ? `: ${e.note}` : ''}`,
        );
      }
    }
    lap('push', t);
  }

  t = Date.now();
  // Similarities depend on the embedding only: drop and relabel find them cached (from training or an earlier edit).
  const keys = cached
    ? null
    : runSimilarityKeys(head, config, data, data.trainableBackbone ? loaded.backboneWeights : null);
  const simDir = similarityCacheDir(config);
  const trainSims = cached
    ? { sims: cached.train, cached: true }
    : await cachedSimilarities(simDir, keys!.train, m, () =>
        computeSimilarities(head, data.sources.train!, { flip: config.data.flip, quiet: opts.quiet }),
      );
  const valSims = cached
    ? cached.val
    : data.sources.val?.n
      ? (
          await cachedSimilarities(simDir, keys!.val, m, () =>
            computeSimilarities(head, data.sources.val!, { flip: false, quiet: true }),
          )
        ).sims
      : null;
  lap('similarities', t);
  t = Date.now();
  const refitConfig = { ...config.lastLayer, ...opts.refit };
  const refitResult = refitLastLayer({
    head,
    train: trainSims.sims,
    val: valSims,
    lastLayerConfig: refitConfig,
    removed,
    rng,
  });
  // The summary records the rate and epochs the refit ran with.
  const refit = { ...refitResult, lr: refitConfig.lr, epochs: refitConfig.epochs };
  lap('lastLayer', t);
  log(
    opts.quiet,
    `last layer refit${trainSims.cached ? ' on cached similarities' : ''}: kept epoch ${refit.epoch} (validation ` +
      `top-1 ${(100 * refit.top1).toFixed(1)}%)`,
  );
  // The same logits predict() would give, from the similarities already at hand.
  const valAcc = valSims
    ? accuracy({
        n: valSims.n,
        numClasses: C,
        logits: head.exactLogits(valSims.sims, valSims.n),
        labels: valSims.labels,
      })
    : null;
  const testAcc = await testAccuracy(head, data, config, dataRoot, opts.quiet);

  t = Date.now();
  const chain: ManifestVersion[] = parent.lineage ?? [
    {
      id: parent.model.id,
      version: parent.model.version,
      createdAt: parent.model.createdAt,
      parent: parent.model.parent?.version ?? null,
      edits: { drop: 0, relabel: 0, forbid: 0, keep: 0 },
      val: parent.metrics.val,
      explanation: parent.metrics.explanation,
      livePrototypes: before.livePrototypes,
    },
  ];
  const lineage: ModelLineage = {
    parent: { run: resolve(opts.run), id: parent.model.id, version: parent.model.version, weightsSha256: parentSha },
    edits,
    chain,
    history,
  };
  await mkdir(outPaths.model, { recursive: true });
  await saveModel(outPaths.model, {
    config,
    classes: json.classes,
    head,
    backbone: data.trainableBackbone,
    push,
    trainItems,
    pruning: json.pruning,
    pruned: [...pruned].sort((a, b) => a[0] - b[0]).map(([prototype, reason]) => ({ prototype, reason })),
    lineage,
  });
  await writeJson(outPaths.config, config);
  await writeJson(join(opts.out, 'edits.json'), edits);
  if (await exists(parentPaths.metrics)) await copyFile(parentPaths.metrics, outPaths.metrics);
  // The black box the parent is compared with is the edited version's too.
  if (await exists(parentPaths.baseline)) await copyFile(parentPaths.baseline, outPaths.baseline);
  await writeJson(outPaths.summary, {
    ...(summary ?? {}),
    dataset: { ...(summary?.dataset ?? {}), root: dataRoot },
    final: { val: valAcc, test: testAcc },
    prototypes: m,
    edit: { parent: lineage.parent, counts, forget, refit, moved },
  });
  lap('save', t);

  let bundle: BundleReport | null = null;
  if (!opts.skipBundle) {
    t = Date.now();
    // Drop and relabel leave every prototype where it was: its pictures and neighbours are reused.
    bundle = await buildBundle({
      run: opts.out,
      data: dataRoot,
      quiet: opts.quiet,
      ...(hasConcepts ? {} : { reuse: { dir: parentPaths.bundle, manifest: parent } }),
      // The features (or, for drop and relabel with cached similarities, just the items) at hand.
      prepared: { data, ...(cached ? { valAccuracy: valAcc } : {}) },
    });
    lap('bundle', t);
  } else await data.frozenBackbone?.dispose();
  seconds.total = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const after: VersionFigures = {
    val: bundle?.metrics.val ?? acc(valAcc),
    test: acc(testAcc),
    explanation: bundle?.metrics.explanation ?? null,
    livePrototypes: removed.filter((r) => !r).length,
  };
  const version = bundle ? (await readBundle(bundle.dir)).manifest.model.version : null;
  return {
    out: opts.out,
    parent: { id: parent.model.id, version: parent.model.version },
    version,
    counts,
    before,
    after,
    forget,
    moved,
    similaritiesCached: trainSims.cached,
    concepts,
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    bundle,
  };
}

/**
 * A frozen backbone's items and the head's cached train and validation
 * similarities, read without loading any feature; null when either is missing
 * (then the edit prepares the features and computes what is not cached).
 */
async function cachedInputs(
  config: TrainConfig,
  dataRoot: string,
  head: ProtoHead,
  quiet: boolean | undefined,
): Promise<{ data: PreparedData; train: Similarities; val: Similarities | null } | null> {
  const data = await prepareItems(config, dataRoot, { quiet });
  if (!data) return null;
  // The feature cache holds mirrored training copies exactly when the config flips.
  const keys = runSimilarityKeys(head, config, { ...data, sources: { train: { canFlip: config.data.flip } } }, null);
  const dir = similarityCacheDir(config);
  const train = await loadSimilarities(dir, keys.train);
  const val = data.itemsBySplit.val.length ? await loadSimilarities(dir, keys.val) : null;
  if (!train || (data.itemsBySplit.val.length && !val)) {
    await data.frozenBackbone?.dispose();
    return null;
  }
  return { data, train, val };
}

/** Test accuracy, reading the test split's features when the prepared data has only items. */
async function testAccuracy(
  head: ProtoHead,
  data: PreparedData,
  config: TrainConfig,
  dataRoot: string,
  quiet: boolean | undefined,
): Promise<Accuracy | null> {
  if (data.sources.test?.n) return accuracy(await predict(head, data.sources.test));
  if (!data.itemsBySplit.test.length) return null;
  const test = await prepareData(config, dataRoot, { quiet, splits: ['test'] });
  try {
    return test.sources.test?.n ? accuracy(await predict(head, test.sources.test)) : null;
  } finally {
    await test.frozenBackbone?.dispose();
  }
}

const pair = (before: number[] | null, after: number[] | null): ConceptMatchChange | null =>
  before && after ? { before, after } : null;

async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(`cannot read the edits file ${path}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${(e as Error).message})`);
  }
}

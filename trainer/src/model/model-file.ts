import { join } from 'node:path';
import type { TrainableBackbone } from '../backbone/types.ts';
import type { DatasetItem } from '../data/types.ts';
import { ProtoHead, type HeadSpec } from '../head/proto-head.ts';
import { pickTensors, type HostTensors } from '../core/host-tensors.ts';
import { loadTensorFile, saveTensorFile } from '../core/tensor-file.ts';
import type { EditsFile, HistoryAction, ManifestVersion } from '@protoatlas/shared';
import type { PushRecord } from '../stages/push.ts';
import type { PruningResult } from '../stages/prune-stage.ts';
import { parseConfig, type TrainConfig } from '../config/config.ts';
import { Rng } from '../core/rng.ts';
import { exists, readJson, writeJson } from '../core/run-dir.ts';

/** A pushed prototype's source, resolved to the training image (not just an index). */
export interface PrototypeSource extends PushRecord {
  imageId: string | null;
  imagePath: string | null;
}

export interface ModelJson {
  format: 'protoatlas-model';
  version: 1;
  config: TrainConfig;
  classes: string[];
  head: HeadSpec;
  prototypeClass: number[];
  prototypes: PrototypeSource[] | null;
  /** Prototypes removed by pruning (their last-layer rows are 0), with the reason. */
  pruned: { prototype: number; reason: string }[];
  pruning: PruningResult | null;
  /** Set on a model made by `npm run edit`: its parent and the edits applied. */
  lineage?: ModelLineage;
}

/** Where an edited model came from (trainer/src/edit/). */
export interface ModelLineage {
  /** The parent run directory, its model version and its weights' sha256. */
  parent: { run: string; id: string; version: string; weightsSha256: string };
  /** The edits file applied, as validated. */
  edits: EditsFile;
  /** Earlier versions, oldest first, ending with the parent (from the parent bundle's manifest). */
  chain: ManifestVersion[];
  /** Per prototype (by id), what edits did to it across versions; the new version's entries name it "next". */
  history: Record<string, { version: string; action: HistoryAction; note: string }[]>;
}

/** The trained model as files: model.json (readable) + weights.bin (head and trainable backbone). */
export async function saveModel(
  dir: string,
  m: {
    config: TrainConfig;
    classes: string[];
    head: ProtoHead;
    backbone: TrainableBackbone | null;
    push: PushRecord[] | null;
    trainItems: DatasetItem[];
    pruning: PruningResult | null;
    /** Removed prototypes when they are not just the prune stage's (an edited model). */
    pruned?: { prototype: number; reason: string }[];
    lineage?: ModelLineage;
  },
): Promise<void> {
  const json: ModelJson = {
    format: 'protoatlas-model',
    version: 1,
    config: m.config,
    classes: m.classes,
    head: m.head.spec,
    prototypeClass: Array.from(m.head.protoClass),
    prototypes: m.push
      ? m.push.map((r) => ({
          ...r,
          imageId: r.item >= 0 ? (m.trainItems[r.item]?.id ?? null) : null,
          imagePath: r.item >= 0 ? (m.trainItems[r.item]?.path ?? null) : null,
        }))
      : null,
    pruned:
      m.pruned ??
      (m.pruning?.applied ? m.pruning.candidates.map((c) => ({ prototype: c.prototype, reason: c.reason })) : []),
    pruning: m.pruning,
    ...(m.lineage ? { lineage: m.lineage } : {}),
  };
  const tensors: HostTensors = new Map(m.head.getWeights());
  if (m.backbone) for (const [k, v] of m.backbone.getWeights()) tensors.set(`backbone.${k}`, v);
  await saveTensorFile(join(dir, 'weights.bin'), { format: 'protoatlas-weights', version: 1 }, tensors);
  await writeJson(join(dir, 'model.json'), json);
}

export interface LoadedModel {
  json: ModelJson;
  config: TrainConfig;
  head: ProtoHead;
  backboneWeights: HostTensors;
}

/** Read model.json (no tensors, so it works before a backend is chosen). */
export async function readModelJson(dirOrRun: string): Promise<{ dir: string; json: ModelJson; config: TrainConfig }> {
  const dir = (await exists(join(dirOrRun, 'model', 'model.json'))) ? join(dirOrRun, 'model') : dirOrRun;
  const jsonPath = join(dir, 'model.json');
  if (!(await exists(jsonPath))) {
    throw new Error(
      `no trained model in ${dirOrRun}: expected ${join(dirOrRun, 'model', 'model.json')} (a finished run directory) or ${jsonPath}`,
    );
  }
  const json = await readJson<ModelJson>(jsonPath);
  if (json.format !== 'protoatlas-model')
    throw new Error(`${jsonPath}: not a ProtoAtlas model (format "${String(json.format)}")`);
  return { dir, json, config: parseConfig(json.config, jsonPath) };
}

/** Load from a run dir (run/model/) or a model dir directly. Call after initBackend. */
export async function loadModel(dirOrRun: string): Promise<LoadedModel> {
  const { dir, json, config } = await readModelJson(dirOrRun);
  const head = new ProtoHead(json.head, new Rng(0));
  const weights = await loadTensorFile(join(dir, 'weights.bin'));
  head.setWeights(pickTensors(weights.tensors, 'head.'));
  // An edit may have moved prototypes to other classes: the recorded classes win over the spec's layout.
  if (json.prototypeClass?.length === head.numPrototypes) head.protoClass.set(json.prototypeClass);
  return { json, config, head, backboneWeights: pickTensors(weights.tensors, 'backbone.', true) };
}

/**
 * The loaded bundle: its manifest (validated by the shared schema), what the
 * API says about the model and each prototype, and the public URLs of its files.
 */
import {
  manifestLastLayer,
  parseManifest,
  type ExplainModel,
  type Manifest,
  type ManifestPrototype,
} from '@protoatlas/shared';
import { ASSET_PREFIX, type AssetStore } from './assets.ts';
import { chooseModelFile } from './model-session.ts';

export interface LoadedBundle {
  manifest: Manifest;
  /** What explain() needs, built once. */
  explainModel: ExplainModel;
}

export async function loadBundle(assets: AssetStore): Promise<LoadedBundle> {
  const res = await assets.fetch('manifest.json');
  if (!res.ok)
    throw new Error(
      `the bundle's manifest.json is missing from the static assets (HTTP ${res.status}); stage a bundle (PROTOATLAS_BUNDLE)`,
    );
  const manifest = parseManifest(await res.json(), 'manifest.json');
  return {
    manifest,
    explainModel: {
      lastLayer: manifestLastLayer(manifest),
      numClasses: manifest.classes.length,
      pruned: manifest.prototypes.map((p) => p.pruned),
      epsilon: manifest.similarityEpsilon,
    },
  };
}

/** Absolute URL of a bundle file, on the origin that served the request. */
export function assetUrl(origin: string, path: string | null | undefined): string | null {
  return path ? `${origin}${ASSET_PREFIX}${path}` : null;
}

export function modelCard(b: LoadedBundle, origin: string) {
  const m = b.manifest;
  const file = chooseModelFile(m);
  const live = m.prototypes.filter((p) => !p.pruned).length;
  return {
    id: m.model.id,
    version: m.model.version,
    /** The version this one was edited from (npm run edit); null for a trained model. */
    parent: m.model.parent ?? null,
    /** Every version of the edit chain with its validation accuracy (empty for a model never edited). */
    versions: (m.lineage ?? []).map((v) => ({
      id: v.id,
      version: v.version,
      parent: v.parent,
      createdAt: v.createdAt,
      edits: v.edits,
      validation: v.val,
    })),
    description: m.model.description,
    preset: m.model.preset,
    createdAt: m.model.createdAt,
    classes: m.classes.map((c) => ({
      id: c.id,
      key: c.key,
      name: c.name,
      prototypes: m.prototypes.filter((p) => p.classId === c.id && !p.pruned).length,
    })),
    prototypes: { total: m.prototypes.length, live, pruned: m.prototypes.length - live },
    input: { size: m.preprocessing.size, resize: m.preprocessing.resize, layout: 'NHWC RGB 0-255' },
    accuracy: {
      validation: m.metrics.val,
      test: m.metrics.test,
      baseline: m.metrics.baseline,
    },
    explanation: m.metrics.explanation,
    runtime: file
      ? { engine: 'onnxruntime-web (wasm)', precision: file.precision, bytes: file.bytes, sha256: file.sha256 }
      : null,
    backbone: { kind: m.backbone.kind, description: m.backbone.description, licence: m.backbone.licence },
    dataset: { name: m.dataset.name, licence: m.dataset.licence },
    links: { manifest: assetUrl(origin, 'manifest.json') },
  };
}

export function prototypeDetails(b: LoadedBundle, p: ManifestPrototype, origin: string) {
  const m = b.manifest;
  return {
    id: p.id,
    classId: p.classId,
    className: m.classes[p.classId].name,
    pruned: p.pruned,
    prunedReason: p.prunedReason,
    /** Weight to its own class; the full row is in `weights`. */
    weight: p.weights[p.classId],
    weights: p.weights,
    purity: p.purity,
    source: p.source
      ? {
          imageId: p.source.imageId,
          width: p.source.width,
          height: p.source.height,
          box: p.source.box,
          patch: p.source.patch,
        }
      : null,
    images: {
      prototype: assetUrl(origin, p.files?.crop),
      source: assetUrl(origin, p.files?.source),
      heatmap: assetUrl(origin, p.files?.heatmap),
    },
    nearest: p.nearest.train.map((n) => ({
      imageId: n.imageId,
      classId: n.classId,
      distance: n.distance,
      box: n.box,
      image: assetUrl(origin, n.file),
    })),
    history: p.history ?? [],
    review: p.review ?? [],
  };
}

/**
 * TensorFlow.js model files on disk (model.json + binary weight shards)
 * without fetch or tfjs-node: an IOHandler that reads them, and one that
 * writes them.
 */
import { readFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { io } from '@tensorflow/tfjs-core';
import { writeFileAtomic } from '../core/atomic.ts';

interface ModelJson {
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: io.WeightsManifestEntry[] }[];
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  trainingConfig?: io.TrainingConfig;
  // biome-ignore lint/complexity/noBannedTypes: the type tfjs declares for this field
  userDefinedMetadata?: { [key: string]: {} };
}

export interface ModelFiles {
  /** Parsed model.json. */
  json: ModelJson;
  jsonBytes: Buffer;
  /** All weight shards concatenated in manifest order. */
  weightData: ArrayBuffer;
  weightSpecs: io.WeightsManifestEntry[];
}

/**
 * Reads model.json and its weight shards. `weightsPath` replaces the shard list
 * (for a single renamed weights file); by default shards are found next to model.json.
 */
export async function readModelFiles(modelJsonPath: string, weightsPath?: string): Promise<ModelFiles> {
  let jsonBytes: Buffer;
  try {
    jsonBytes = await readFile(modelJsonPath);
  } catch (e) {
    throw new Error(`tfjs model: cannot read ${modelJsonPath} (${e instanceof Error ? e.message : String(e)})`);
  }
  const json = JSON.parse(jsonBytes.toString('utf8')) as ModelJson;
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new Error(
      `tfjs model: ${modelJsonPath} is not a layers model.json (needs modelTopology and weightsManifest)`,
    );
  }
  const shardPaths = weightsPath
    ? [weightsPath]
    : json.weightsManifest.flatMap((g) => g.paths.map((p) => join(dirname(modelJsonPath), p)));
  const shards = await Promise.all(
    shardPaths.map(async (p) => {
      try {
        return await readFile(p);
      } catch (e) {
        throw new Error(
          `tfjs model: cannot read weights ${p} listed in ${modelJsonPath} (${e instanceof Error ? e.message : String(e)})`,
        );
      }
    }),
  );
  const total = shards.reduce((a, s) => a + s.length, 0);
  const weightData = new ArrayBuffer(total);
  const view = new Uint8Array(weightData);
  let off = 0;
  for (const s of shards) {
    view.set(s, off);
    off += s.length;
  }
  return { json, jsonBytes, weightData, weightSpecs: json.weightsManifest.flatMap((g) => g.weights) };
}

/** An IOHandler serving already-read model files to tf.loadLayersModel. */
export function filesIOHandler(files: ModelFiles): io.IOHandler {
  return {
    load: async () => ({
      modelTopology: files.json.modelTopology,
      weightSpecs: files.weightSpecs,
      weightData: files.weightData,
      format: files.json.format,
      generatedBy: files.json.generatedBy,
      convertedBy: files.json.convertedBy ?? undefined,
      trainingConfig: files.json.trainingConfig,
      userDefinedMetadata: files.json.userDefinedMetadata,
    }),
  };
}

/** An IOHandler for model.save() writing `dir`/model.json + `dir`/weights.bin (atomically renamed). */
export function dirSaveHandler(dir: string): io.IOHandler {
  return {
    save: async (artifacts) => {
      await mkdir(dir, { recursive: true });
      const data = artifacts.weightData;
      const chunks = data === undefined ? [] : Array.isArray(data) ? data : [data];
      const bytes = Buffer.concat(chunks.map((b) => new Uint8Array(b)));
      const json: ModelJson = {
        modelTopology: artifacts.modelTopology as object,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
      };
      await writeFileAtomic(join(dir, 'weights.bin'), bytes);
      await writeFileAtomic(join(dir, 'model.json'), JSON.stringify(json));
      return {
        modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: bytes.length },
      };
    },
  };
}

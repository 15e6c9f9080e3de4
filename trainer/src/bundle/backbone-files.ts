import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { resolveWeights } from '../backbone/download.ts';
import type { TrainConfig } from '../config/config.ts';
import { resolveDataPath, resolveRepoPath } from '../core/data-path.ts';

/** Where a bundle keeps a frozen/pretrained backbone's own files. */
export const BUNDLE_BACKBONE_DIR = 'backbone';

/**
 * Copy the backbone's weight files into the bundle (so `explain` works without
 * the original data folder) and return them relative to the bundle, the main
 * file first. The small CNN's weights live in the model's weights.bin: nothing to copy.
 */
export async function copyBackboneFiles(config: TrainConfig, bundleDir: string): Promise<string[]> {
  const b = config.backbone;
  const src = await backboneWeightsPath(config);
  if (b.kind === 'small-cnn' || !src) return [];
  await mkdir(join(bundleDir, BUNDLE_BACKBONE_DIR), { recursive: true });
  const main = `${BUNDLE_BACKBONE_DIR}/${basename(src)}`;
  await copyFile(src, join(bundleDir, main));
  const out = [main];
  if (b.kind === 'tfjs-layers') {
    const json = JSON.parse(await readFile(src, 'utf8')) as { weightsManifest?: { paths: string[] }[] };
    for (const p of json.weightsManifest?.flatMap((g) => g.paths) ?? []) {
      if (p.includes('..') || p.startsWith('/')) throw new Error(`${src}: weight path "${p}" leaves the model folder`);
      await copyFile(join(dirname(src), p), join(bundleDir, BUNDLE_BACKBONE_DIR, p));
      out.push(`${BUNDLE_BACKBONE_DIR}/${p}`);
    }
  }
  return out;
}

/** The config as stored in the bundle: the backbone path points at the bundle's copy. */
export function bundledConfig(config: TrainConfig, backboneFiles: string[]): TrainConfig {
  const b = config.backbone;
  if (b.kind === 'small-cnn' || !backboneFiles.length) return config;
  return { ...config, backbone: { ...b, path: backboneFiles[0], url: undefined } };
}

/** The backbone's weights file on this machine (null for the small CNN, whose weights are in the model). */
export async function backboneWeightsPath(config: TrainConfig): Promise<string | null> {
  const b = config.backbone;
  if (b.kind === 'small-cnn') return null;
  return resolveWeights(
    { path: b.path ? resolveDataPath(b.path) : undefined, url: b.url, sha256: b.sha256 },
    resolveRepoPath(config.featureCacheDir),
  );
}

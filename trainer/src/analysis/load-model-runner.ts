import { isAbsolute, join } from 'node:path';
import { loadModel, type LoadedModel } from '../model/model-file.ts';
import { buildBackbone } from '../model/prepare-data.ts';
import { resolveRepoPath } from '../core/data-path.ts';
import { ModelRunner } from './model-runner.ts';

/**
 * A saved model (run dir or model dir) with its backbone, ready to run on
 * pixels. Call after initBackend. `backboneBase`: relative backbone paths in
 * the model's config resolve against it (a bundle keeps its own copy).
 */
export async function loadModelRunner(
  dir: string,
  opts: { backboneBase?: string } = {},
): Promise<{ runner: ModelRunner; model: LoadedModel }> {
  const model = await loadModel(dir);
  const { config } = model;
  const b = config.backbone;
  const local =
    opts.backboneBase && b.kind !== 'small-cnn' && b.path && !isAbsolute(b.path)
      ? { ...config, backbone: { ...b, path: join(opts.backboneBase, b.path) } }
      : config;
  const backbone = await buildBackbone(local, {
    cacheDir: resolveRepoPath(config.featureCacheDir),
    backboneWeights: model.backboneWeights,
  });
  return { runner: new ModelRunner(model.head, backbone), model };
}

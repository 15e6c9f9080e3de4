/**
 * A frozen backbone for feature-pool tests, built in worker threads from its recipe: each feature is
 * the mean of one channel of the normalised image, and dispose() appends a line to a marker file, so
 * a test can see that every worker released its backbone.
 */
import { appendFileSync } from 'node:fs';
import type { FrozenBackbone } from '../../trainer/src/backbone/types.ts';

export interface MarkerBackboneOptions {
  /** File dispose() appends "disposed" to. */
  marker: string;
  /** extract() throws when a batch holds this many images (a failing batch). */
  failOnBatchOf?: number;
}

export const MARKER_SIZE = 8;

export function markerBackbone(options: MarkerBackboneOptions): FrozenBackbone {
  const size = MARKER_SIZE;
  return {
    hash: 'marker',
    description: 'marker backbone (tests)',
    preprocess: { size, mean: [0, 0, 0], std: [1, 1, 1] },
    featureShape: [1, 1, 3],
    recipe: { module: import.meta.url, factory: 'markerBackbone', options },
    async extract(batch: Float32Array, n: number): Promise<Float32Array> {
      if (options.failOnBatchOf === n) throw new Error(`marker backbone: refused a batch of ${n}`);
      const out = new Float32Array(n * 3);
      const per = size * size * 3;
      for (let i = 0; i < n; i++)
        for (let p = 0; p < size * size; p++)
          for (let c = 0; c < 3; c++) out[i * 3 + c] += batch[i * per + p * 3 + c] / (size * size);
      return out;
    },
    async dispose(): Promise<void> {
      appendFileSync(options.marker, 'disposed\n');
    },
  };
}

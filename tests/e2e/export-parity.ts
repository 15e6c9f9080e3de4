/**
 * The check every bundled e2e run makes of its export: the fp32 ONNX model's logits on each photo equal
 * the trainer's own (the bundle runner's explanation), to 1e-3.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { expect } from 'vitest';
import type { Manifest } from '@protoatlas/shared';
import { explainImage } from '../../trainer/src/analysis/explain-image.ts';
import { loadBundleRunner } from '../../trainer/src/bundle/read-bundle.ts';
import { decodeImage } from '../../trainer/src/data/decode.ts';
import { maxAbsDiff } from '../export/helpers.ts';

export async function expectFp32ExportMatchesTrainer(bundle: string, manifest: Manifest, photos: string[]) {
  const runner = await loadBundleRunner(bundle, manifest, { quiet: true });
  const fp32 = await ort.InferenceSession.create(join(bundle, manifest.files.onnx!.fp32!.path));
  const size = manifest.preprocessing.size;
  for (const photo of photos) {
    const e = (await explainImage(runner, manifest, photo)).explanation;
    const img = await decodeImage(photo, { size });
    const out = await fp32.run({ image: new ort.Tensor('float32', Float32Array.from(img.data), [1, size, size, 3]) });
    expect(maxAbsDiff(out.logits.data as Float32Array, e.logits)).toBeLessThan(1e-3);
  }
  await fp32.release();
}

import { join } from 'node:path';
import type { Manifest } from '@protoatlas/shared';
import { exportOnnx, type ExportResult } from '../export/export-onnx.ts';
import { exportInt8, type ExportInt8Result } from '../export/quantize-export.ts';
import { readModelJson } from '../model/model-file.ts';
import type { BackendPreference } from '../tf/backend.ts';

/** Where a bundle keeps its exported models (relative to the bundle). */
export const ONNX_FILES = { fp32: 'onnx/model.fp32.onnx', int8: 'onnx/model.int8.onnx' } as const;

/**
 * Export the run's model into a bundle directory as ONNX and describe it for the
 * manifest. The deployed input takes 0-255 RGB pixels (NHWC) and normalises in
 * the graph, so the edge and the widget only resize: no normalisation code to
 * keep in step with training.
 */
export async function exportBundleOnnx(
  run: string,
  bundleDir: string,
  opts: { backend?: BackendPreference; dataDir?: string | null; int8?: boolean } = {},
): Promise<{ onnx: NonNullable<Manifest['files']['onnx']>; fp32: ExportResult; int8: ExportInt8Result | null }> {
  const fp32 = await exportOnnx(run, join(bundleDir, ONNX_FILES.fp32), { input: 'nhwc-rgb255', backend: opts.backend });
  // The deployed variant: int8 weights (calibrated on training images), float distances.
  // A fine-tuned ONNX backbone stays float in the deployed model: re-quantising the tuned
  // weights drifts through 52 layers (20-species run: static int8 or int8 weights alone both
  // agreed with fp32 on only ~95% of validation images).
  const { config } = await readModelJson(run);
  const tuned = config.backbone.kind === 'onnx' && config.backbone.trainable;
  const int8 =
    opts.int8 === false
      ? null
      : await exportInt8(run, join(bundleDir, ONNX_FILES.int8), {
          input: 'nhwc-rgb255',
          backend: opts.backend,
          dataDir: opts.dataDir ?? null,
          backbone: tuned ? 'float' : 'static',
          fp32,
        });
  return {
    fp32,
    int8,
    onnx: {
      fp32: { path: ONNX_FILES.fp32, bytes: fp32.bytes, sha256: fp32.sha256 },
      int8: int8 ? { path: ONNX_FILES.int8, bytes: int8.bytes, sha256: int8.sha256 } : null,
      inputs: fp32.manifest.inputs,
      outputs: fp32.manifest.outputs,
    },
  };
}

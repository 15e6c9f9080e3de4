/** The reference: onnxruntime-node (native) on the ONNX file the edge serves (int8 when the bundle has it), fed the shared preprocessing. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { parseManifest, resizeStretch } from '@protoatlas/shared';
import { decodeImage } from '../../../trainer/src/data/decode.ts';

export async function nativeLogits(
  bundleDir: string,
  images: { rgb: Uint8Array; width: number; height: number }[],
): Promise<Float32Array[]> {
  const manifest = parseManifest(JSON.parse(await readFile(join(bundleDir, 'manifest.json'), 'utf8')));
  const S = manifest.preprocessing.size;
  const onnx = manifest.files.onnx!;
  const session = await ort.InferenceSession.create(join(bundleDir, (onnx.int8 ?? onnx.fp32)!.path));
  try {
    const out: Float32Array[] = [];
    for (const img of images) {
      const input = Float32Array.from(
        resizeStretch({ data: img.rgb, width: img.width, height: img.height, channels: 3 }, S, S),
      );
      const r = await session.run({ image: new ort.Tensor('float32', input, [1, S, S, 3]) });
      out.push(Float32Array.from(r.logits.data as Float32Array));
    }
    return out;
  } finally {
    await session.release();
  }
}

/** The trainer's answer for a file: its own decodeImage (sharp, EXIF applied) fed to onnxruntime-node. */
export async function trainerLogits(bundleDir: string, paths: string[]): Promise<Float32Array[]> {
  const manifest = parseManifest(JSON.parse(await readFile(join(bundleDir, 'manifest.json'), 'utf8')));
  const S = manifest.preprocessing.size;
  const onnx = manifest.files.onnx!;
  const session = await ort.InferenceSession.create(join(bundleDir, (onnx.int8 ?? onnx.fp32)!.path));
  try {
    const out: Float32Array[] = [];
    for (const path of paths) {
      const input = await decodeImage(path, { size: S, orient: true });
      const r = await session.run({ image: new ort.Tensor('float32', Float32Array.from(input.data), [1, S, S, 3]) });
      out.push(Float32Array.from(r.logits.data as Float32Array));
    }
    return out;
  } finally {
    await session.release();
  }
}

/**
 * The deployed int8 model of a run: the fp32 export (export-onnx.ts), quantised
 * with activation ranges calibrated on training images, then rewritten for
 * onnxruntime-web (quantize.ts). The defaults follow bench/export-web.ts:
 *
 * - float backbones (tfjs: small CNN, MobileNetV2 0.35): static int8
 *   QOperator, weights per output channel, Relu folded into the ranges;
 * - an int8 ONNX backbone keeps the arithmetic the head was trained on: with
 *   compute 'float' (the CUB presets) its int8 weights on float kernels, stored
 *   int8 and folded at load (W8A32: in wasm, which has no int8 dot products,
 *   faster than int8 activations, bench/export-web.ts); with compute 'int8' its
 *   QLinear ops bit for bit (switching between the two changes ~18% of the CUB
 *   top-1 answers, so the deployed model never does);
 * - the head's add-on layers: int8 weights, float activations (static int8
 *   activations there change 2% of the CUB answers, weight-only 0.4%);
 * - prototype distances, the log similarity and the last layer: float;
 * - finally every depthwise QLinearConv is emulated in float with the same
 *   uint8 results (rewriteForWasm), because wasm has no SIMD int8 depthwise kernel.
 */
import { readFile, rm } from 'node:fs/promises';
import { sha256Hex } from '@protoatlas/shared';
import * as ort from 'onnxruntime-node';
import type { OnnxNode } from '../onnx/onnx-proto.ts';
import { decodeMany, toNHWC } from '../data/decode.ts';
import { loadDataset } from '../data/load-dataset.ts';
import type { DatasetItem, RgbImage } from '../data/types.ts';
import { writeFileAtomic } from '../core/atomic.ts';
import type { TrainConfig } from '../config/config.ts';
import { readModelJson } from '../model/model-file.ts';
import { resolveDataDir } from '../model/prepare-data.ts';
import { Rng } from '../core/rng.ts';
import type { ImageInputSpec } from './backbone-graph.ts';
import { calibrate, type CalibrationBatch, type CalibrationOptions } from './calibrate.ts';
import { exportOnnx, type ExportOnnxOptions, type ExportResult } from './export-onnx.ts';
import {
  defaultQuantInclude,
  quantizationTargets,
  quantizeStatic,
  quantizeWeightsOnly,
  rewriteForWasm,
  summarizeModel,
  type QConvKind,
  type QuantFormat,
  type WeightGranularity,
} from './quantize.ts';

export interface Int8Options {
  /**
   * The backbone's float Conv layers (tfjs or fine-tuned backbones): 'static' int8 (default),
   * 'weight-only' (int8 weights, float compute: a fine-tuned backbone keeps its numbers and
   * wasm runs float convs fast) or left 'float'. An int8 ONNX backbone is int8 already.
   */
  backbone?: 'static' | 'weight-only' | 'float';
  /**
   * The head's add-on Conv layers: 'weight-only' (default: int8 weights, float
   * activations), 'static' (int8 activations too) or 'float'. On the CUB run,
   * static int8 add-ons change 2% of top-1 predictions (the distances downstream
   * are sensitive), weight-only 0.4%.
   */
  head?: 'weight-only' | 'static' | 'float';
  /** Static quantisation format. Default 'qoperator'. */
  format?: QuantFormat;
  /** Default 'per-channel'. */
  weights?: WeightGranularity;
  calibration?: CalibrationOptions;
  /** QLinearConv kinds emulated in float for wasm; [] turns the rewrite off. Default ['depthwise']. */
  wasmKinds?: QConvKind[];
}

export interface Int8Model {
  bytes: Uint8Array;
  /** Conv nodes statically quantised. */
  quantized: string[];
  /** Nodes whose weights are stored int8 with float compute. */
  weightOnly: string[];
  /** QLinearConv nodes emulated in float, by kind. */
  rewritten: Record<QConvKind, number>;
  notes: string[];
}

const isHead = (n: OnnxNode): boolean => n.inputs[1]?.startsWith('head/') ?? false;

/**
 * fp32 export bytes → int8 model bytes. `batches` are calibration inputs in the
 * export's input format (normalised NCHW or 0..255 NHWC, as ImageInputSpec says);
 * they are only read when there is something to quantise statically.
 */
export async function int8FromFp32(
  fp32: Uint8Array,
  batches: Iterable<CalibrationBatch> | AsyncIterable<CalibrationBatch>,
  opts: Int8Options = {},
): Promise<Int8Model> {
  const backbone = opts.backbone ?? 'static';
  const head = opts.head ?? 'weight-only';
  const include = (n: OnnxNode): boolean =>
    defaultQuantInclude(n) && (isHead(n) ? head === 'static' : backbone === 'static');
  const targets = quantizationTargets(fp32, { include });
  const notes: string[] = [];
  let bytes = fp32;
  let quantized: string[] = [];
  if (targets.length) {
    const cal = await calibrate(fp32, targets, batches, opts.calibration);
    const q = quantizeStatic(fp32, cal.ranges, { format: opts.format, weights: opts.weights, include });
    bytes = q.bytes;
    quantized = q.quantized;
    notes.push(
      `static int8: ${q.quantized.length} Conv (${opts.format ?? 'qoperator'}, ${opts.weights ?? 'per-channel'} weights, ${q.foldedRelu} Relu folded), ranges from ${cal.samples} calibration images (${opts.calibration?.method ?? 'minmax'})`,
    );
  }
  let weightOnly: string[] = [];
  if (head === 'weight-only' || backbone === 'weight-only') {
    const w = quantizeWeightsOnly(bytes, {
      weights: opts.weights,
      include: (n) =>
        n.opType === 'Conv' &&
        defaultQuantInclude(n) &&
        (isHead(n) ? head === 'weight-only' : backbone === 'weight-only'),
    });
    bytes = w.bytes;
    weightOnly = w.quantized;
    if (w.quantized.length) notes.push(`weight-only int8: ${w.quantized.length} Conv (float activations)`);
  }
  const w = rewriteForWasm(bytes, { kinds: opts.wasmKinds ?? ['depthwise'] });
  const n = Object.values(w.rewritten).reduce((a, b) => a + b, 0);
  if (n)
    notes.push(
      `${n} int8 QLinearConv emulated in float for wasm (${Object.entries(w.rewritten)
        .filter(([, v]) => v)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ')}), same uint8 results`,
    );
  if (w.skipped.length) notes.push(`${w.skipped.length} QLinearConv kept: accumulators could exceed 2^24`);
  return { bytes: w.bytes, quantized, weightOnly, rewritten: w.rewritten, notes };
}

// ---- calibration images ----------------------------------------------------------------

/** `n` training items, a seeded sample spread over the classes. */
export function calibrationItems(train: DatasetItem[], n: number, seed: number): DatasetItem[] {
  return new Rng(seed).shuffle([...train]).slice(0, Math.min(n, train.length));
}

/** Decoded images as one input batch in the export's format. */
export function inputBatch(images: RgbImage[], spec: ImageInputSpec): { data: Float32Array; dims: number[] } {
  const s = spec.preprocess.size;
  const n = images.length;
  if (spec.format === 'nhwc-rgb255') {
    const data = new Float32Array(n * s * s * 3);
    images.forEach((im, i) => data.set(im.data, i * s * s * 3));
    return { data, dims: [n, s, s, 3] };
  }
  return { data: nhwcToNchw(toNHWC(images, spec.preprocess, false), n, s), dims: [n, 3, s, s] };
}

export function nhwcToNchw(x: Float32Array, n: number, s: number): Float32Array {
  const out = new Float32Array(x.length);
  const p = s * s;
  for (let i = 0; i < n; i++)
    for (let q = 0; q < p; q++) for (let c = 0; c < 3; c++) out[(i * 3 + c) * p + q] = x[(i * p + q) * 3 + c];
  return out;
}

/** Calibration batches of `batchSize` decoded training images. */
export async function* calibrationBatches(
  items: DatasetItem[],
  spec: ImageInputSpec,
  batchSize = 16,
): AsyncIterable<CalibrationBatch> {
  for (let i = 0; i < items.length; i += batchSize) {
    const { images } = await decodeMany(items.slice(i, i + batchSize), spec.preprocess.size, {});
    const ok = images.filter((im): im is RgbImage => im !== null);
    if (ok.length) yield { [spec.name]: inputBatch(ok, spec) };
  }
}

// ---- run dir → int8 file ---------------------------------------------------------------------

export interface ExportInt8Options extends ExportOnnxOptions, Int8Options {
  /** Dataset folder (needed for ONNX/tfjs backbones; the demo preset finds its synthetic set). */
  dataDir?: string | null;
  /** Training images used for calibration. Default 128. */
  calibrationImages?: number;
  /** An fp32 export of the same run already on disk (the bundle writes one): reused, not redone. */
  fp32?: ExportResult;
}

export interface ExportInt8Result extends ExportResult {
  precision: 'int8';
  /** Size of the fp32 export it was made from. */
  fp32Bytes: number;
  quantized: string[];
  weightOnly: string[];
  rewritten: Record<QConvKind, number>;
}

/** Exports the run's fp32 model, then writes its int8 variant to `outFile` (checked in onnxruntime-node). */
export async function exportInt8(
  runDir: string,
  outFile: string,
  opts: ExportInt8Options = {},
): Promise<ExportInt8Result> {
  let fp32: ExportResult;
  let fp32Bytes: Uint8Array;
  if (opts.fp32) {
    fp32 = opts.fp32;
    fp32Bytes = new Uint8Array(await readFile(fp32.file));
  } else {
    const fp32File = `${outFile}.fp32.tmp`;
    fp32 = await exportOnnx(runDir, fp32File, opts);
    fp32Bytes = new Uint8Array(await readFile(fp32File));
    await rm(fp32File, { force: true });
  }
  const { config } = await readModelJson(runDir);
  const items = await calibrationTrainItems(config, opts.dataDir ?? null, opts.calibrationImages ?? 128);
  const q = await int8FromFp32(fp32Bytes, calibrationBatches(items, fp32.input), opts);
  // The int8 model must load and run where the trainer checks models.
  const s = await ort.InferenceSession.create(q.bytes, { logSeverityLevel: 3 });
  await s.release();
  await writeFileAtomic(outFile, q.bytes);
  const sum = summarizeModel(q.bytes);
  return {
    ...fp32,
    file: outFile,
    bytes: q.bytes.length,
    sha256: await sha256Hex(q.bytes),
    notes: [
      ...fp32.notes,
      ...q.notes,
      `int8 weights ${((sum.weightBytes.int8 ?? 0) / 2 ** 20).toFixed(2)} MiB, float ${((sum.weightBytes.float32 ?? 0) / 2 ** 20).toFixed(2)} MiB`,
    ],
    sessionMs: null,
    precision: 'int8',
    fp32Bytes: fp32.bytes,
    quantized: q.quantized,
    weightOnly: q.weightOnly,
    rewritten: q.rewritten,
  };
}

/** Calibration images from the run's training split (the validation split is held out as in training). */
export async function calibrationTrainItems(
  config: TrainConfig,
  dataDir: string | null,
  n: number,
): Promise<DatasetItem[]> {
  const root = await resolveDataDir(config, dataDir, true);
  const ds = await loadDataset(root, { valPerClass: config.data.valPerClass, seed: config.seed });
  return calibrationItems(ds.splits.train, n, config.seed + 1);
}

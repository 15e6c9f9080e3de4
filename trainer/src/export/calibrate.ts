/**
 * Activation ranges for static int8 quantisation (quantize.ts): the fp32 model
 * runs in onnxruntime-node on calibration batches (training images, normalised
 * by the caller) with the requested intermediate tensors exposed as extra
 * outputs, and each tensor's range is its min/max, or a percentile of its
 * values (which ignores rare outliers at the cost of clipping them).
 */
import * as ort from 'onnxruntime-node';
import { decodeModel, encodeModel, makeValueInfo, OnnxDataType } from '../onnx/onnx-proto.ts';
import { Rng } from '../core/rng.ts';
import type { TensorRange } from './quantize.ts';

export interface CalibrationBatch {
  /** Graph input name → float32 data and dims. */
  [input: string]: { data: Float32Array; dims: readonly number[] };
}

export interface CalibrationOptions {
  /** 'minmax' (default) or 'percentile'. */
  method?: 'minmax' | 'percentile';
  /** For 'percentile': the kept share of each tail, e.g. 99.99 keeps [p0.01, p99.99]. Default 99.99. */
  percentile?: number;
  /** For 'percentile': values sampled per tensor (reservoir). Default 200000. */
  sampleSize?: number;
  seed?: number;
}

export interface CalibrationResult {
  ranges: Map<string, TensorRange>;
  /** Images (batch rows) seen. */
  samples: number;
}

/** Runs `batches` through the fp32 model and returns the range of every tensor in `tensors`. */
export async function calibrate(
  modelBytes: Uint8Array,
  tensors: readonly string[],
  batches: Iterable<CalibrationBatch> | AsyncIterable<CalibrationBatch>,
  opts: CalibrationOptions = {},
): Promise<CalibrationResult> {
  const method = opts.method ?? 'minmax';
  const model = decodeModel(modelBytes);
  const g = model.graph;
  const produced = new Set([...g.nodes.flatMap((n) => n.outputs), ...g.inputs.map((i) => i.name)]);
  for (const t of tensors) if (!produced.has(t)) throw new Error(`calibrate: the model has no tensor "${t}"`);
  const existing = new Set(g.outputs.map((o) => o.name));
  const inputs = new Set(g.inputs.map((i) => i.name));
  const extra = tensors.filter((t) => !existing.has(t) && !inputs.has(t));
  const fetched = tensors.filter((t) => !inputs.has(t));
  const probe = encodeModel({
    ...model,
    graph: { ...g, outputs: [...g.outputs, ...extra.map((t) => makeValueInfo(t, OnnxDataType.FLOAT))] },
  });
  // No graph optimisation: fusions would drop the intermediate tensors asked for.
  const session = await ort.InferenceSession.create(probe, { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  const min = new Map(tensors.map((t) => [t, Infinity]));
  const max = new Map(tensors.map((t) => [t, -Infinity]));
  const rng = new Rng(opts.seed ?? 0);
  const cap = opts.sampleSize ?? 200_000;
  const reservoirs = new Map(tensors.map((t) => [t, { values: new Float32Array(cap), filled: 0, seen: 0 }]));
  let samples = 0;
  try {
    for await (const batch of batches) {
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(batch)) feeds[name] = new ort.Tensor('float32', t.data, t.dims);
      samples += Object.values(batch)[0]?.dims[0] ?? 0;
      const res = await session.run(feeds, fetched);
      for (const t of tensors) {
        const v = (inputs.has(t) ? batch[t]?.data : res[t].data) as Float32Array | undefined;
        if (!v) throw new Error(`calibrate: the batch has no input "${t}"`);
        let lo = min.get(t)!;
        let hi = max.get(t)!;
        for (let i = 0; i < v.length; i++) {
          const x = v[i];
          if (x < lo) lo = x;
          if (x > hi) hi = x;
        }
        min.set(t, lo);
        max.set(t, hi);
        if (method === 'percentile') {
          const r = reservoirs.get(t)!;
          for (let i = 0; i < v.length; i++) {
            r.seen++;
            if (r.filled < cap) r.values[r.filled++] = v[i];
            else {
              const j = rng.int(r.seen);
              if (j < cap) r.values[j] = v[i];
            }
          }
        }
      }
      for (const t of Object.values(res)) t.dispose();
    }
  } finally {
    await session.release();
  }
  if (samples === 0) throw new Error('calibrate: no calibration batches');
  const ranges = new Map<string, TensorRange>();
  for (const t of tensors) {
    if (method === 'minmax') {
      ranges.set(t, { min: min.get(t)!, max: max.get(t)! });
      continue;
    }
    const r = reservoirs.get(t)!;
    const sorted = r.values.slice(0, r.filled).sort();
    const p = opts.percentile ?? 99.99;
    const q = (f: number): number =>
      sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(f * (sorted.length - 1))))];
    // Keep an exact 0 lower bound (ReLU outputs): it makes the zero point 0 and lets a Relu fold into the range.
    const lo = min.get(t)! >= 0 ? min.get(t)! : q(1 - p / 100);
    ranges.set(t, { min: lo, max: q(p / 100) });
  }
  return { ranges, samples };
}

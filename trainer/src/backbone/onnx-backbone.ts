/**
 * A frozen backbone running an ONNX model in onnxruntime-node, tapped at an
 * intermediate feature map (see onnx-tap.ts). Input and output are NHWC: the
 * layout transposes live inside the graph, where onnxruntime fuses them.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { OnnxDataType } from '../onnx/onnx-proto.ts';
import { insertTap, tapForCompute, type OnnxCompute, type TapQuantization } from './onnx-tap.ts';
import type { FeatureQuantization, FeatureShape, FrozenBackbone, PreprocessSpec } from './types.ts';
import { describeGraphEdits, graphEditsKey, type BackboneGraphEdits } from './graph-edits.ts';

/** With the config's graph edits (output stride, input blur; graph-edits.ts). */
export interface OnnxBackboneOptions extends BackboneGraphEdits {
  path: string;
  /** Tensor to tap, or 'auto' = input of the last (QLinear)GlobalAveragePool. Default 'auto'. */
  tap?: string;
  preprocess: PreprocessSpec;
  /** onnxruntime intra-op threads; default = available cores (fastest on the 2-core target, see bench). */
  threads?: number;
  /** A quantised model's arithmetic: 'int8' as published (default) or 'float' (its int8 weights on float kernels; onnx-tap.ts tapForCompute). */
  compute?: OnnxCompute;
  /** The model's own input layout. Default 'NCHW' (ONNX zoo models). */
  layout?: 'NCHW' | 'NHWC';
  /**
   * Let idle onnxruntime threads spin. Default false: spinning buys little per
   * batch and steals the core that image decoding (sharp) runs on.
   */
  allowSpinning?: boolean;
}

export interface OnnxBackbone extends FrozenBackbone {
  /** The tapped tensor's name in the original graph. */
  readonly tapTensor: string;
  readonly quantization?: FeatureQuantization;
  extractQuantized?(batch: Float32Array, n: number): Promise<Uint8Array>;
}

export async function loadOnnxBackbone(opts: OnnxBackboneOptions): Promise<OnnxBackbone> {
  let fileBytes: Buffer;
  try {
    fileBytes = await readFile(opts.path);
  } catch (e) {
    throw new Error(`ONNX backbone: cannot read ${opts.path} (${e instanceof Error ? e.message : String(e)})`);
  }
  const compute = opts.compute ?? 'int8';
  const tapped = tapForCompute(
    insertTap(fileBytes, {
      tap: opts.tap ?? 'auto',
      nhwc: (opts.layout ?? 'NCHW') === 'NCHW',
      outputStride: opts.outputStride,
      inputBlur: opts.inputBlur,
    }),
    compute,
  );
  const threads = opts.threads ?? availableParallelism();
  const session = await ort.InferenceSession.create(tapped.bytes, {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    logSeverityLevel: 3,
    // Flattened by the Node binding into session config entries ("session.intra_op.allow_spinning").
    extra: {
      session: { intra_op: { allow_spinning: opts.allowSpinning ? '1' : '0' }, inter_op: { allow_spinning: '0' } },
    },
  });
  const hash = createHash('sha256')
    .update(fileBytes)
    .update('\0tap=')
    .update(tapped.tensor)
    .update(compute === 'int8' ? '' : `\0compute=${compute}`)
    .update(graphEditsKey(opts))
    .digest('hex');
  const pre = opts.preprocess;
  const inputSize = pre.size * pre.size * 3;

  const run = async (batch: Float32Array, n: number, output: string): Promise<ort.Tensor> => {
    if (batch.length < n * inputSize)
      throw new Error(`ONNX backbone: batch has ${batch.length} floats, expected ${n}x${pre.size}x${pre.size}x3`);
    const input = new ort.Tensor('float32', batch.subarray(0, n * inputSize), [n, pre.size, pre.size, 3]);
    const out = await session.run({ [tapped.input]: input }, [output]);
    return out[output] as ort.Tensor;
  };

  // One dummy image gives the feature shape (symbolic in the metadata) and warms the session up.
  const probe = await run(new Float32Array(inputSize), 1, tapped.floatOutput);
  const dims = probe.dims;
  if (dims.length !== 4)
    throw new Error(`ONNX backbone: tap "${tapped.tensor}" has rank ${dims.length}, expected a 4-d feature map`);
  const featureShape: FeatureShape = [dims[1], dims[2], dims[3]];
  const featureSize = dims[1] * dims[2] * dims[3];

  const backbone: OnnxBackbone = {
    hash,
    // Pool workers each run a one-thread session: cheaper per image than one two-thread session.
    recipe: {
      module: import.meta.url,
      factory: 'loadOnnxBackbone',
      options: { ...opts, threads: 1 } satisfies OnnxBackboneOptions,
    },
    description: `onnx ${opts.path} tap ${tapped.tensor}${describeGraphEdits(opts)}${tapped.quantization ? ' (int8)' : compute === 'float' ? ' (int8 weights, float compute)' : ''} ${threads} thread(s)`,
    preprocess: pre,
    featureShape,
    tapTensor: tapped.tensor,
    async extract(batch, n) {
      if (n === 0) return new Float32Array(0);
      const t = await run(batch, n, tapped.floatOutput);
      return (t.data as Float32Array).subarray(0, n * featureSize);
    },
    async dispose() {
      await session.release();
    },
  };
  if (tapped.grid) return { ...backbone, storageGrid: toUint8Quantization(tapped.grid) };
  if (tapped.rawOutput && tapped.quantization) {
    const q = tapped.quantization;
    const rawOutput = tapped.rawOutput;
    return {
      ...backbone,
      quantization: toUint8Quantization(q),
      async extractQuantized(batch, n) {
        if (n === 0) return new Uint8Array(0);
        const t = await run(batch, n, rawOutput);
        return asUint8(t.data as Uint8Array | Int8Array, q).subarray(0, n * featureSize);
      },
    };
  }
  return backbone;
}

/** int8 taps are shifted by 128 so every cache stores uint8 with one convention. */
function toUint8Quantization(q: TapQuantization): FeatureQuantization {
  return { scale: q.scale, zeroPoint: q.elemType === OnnxDataType.INT8 ? q.zeroPoint + 128 : q.zeroPoint };
}

function asUint8(data: Uint8Array | Int8Array, q: TapQuantization): Uint8Array {
  if (q.elemType !== OnnxDataType.INT8) return data as Uint8Array;
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] + 128;
  return out;
}

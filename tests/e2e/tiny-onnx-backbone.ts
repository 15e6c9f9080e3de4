/**
 * A tiny int8 backbone in the model zoo MobileNetV2's QOperator form, written
 * with the project's own GraphBuilder: QuantizeLinear, a 3x3 stride-2
 * QLinearConv, a depthwise 3x3 stride-2 QLinearConv, a 1x1 QLinearConv (all
 * with per-channel weight scales and ReLU-folded output ranges), then the
 * QLinearGlobalAveragePool whose input the trainer taps, and a classifier.
 */
import { OnnxDataType, encodeModel, makeGraph, makeModel, makeValueInfo } from '../../trainer/src/onnx/onnx-proto.ts';
import { GraphBuilder } from '../../trainer/src/onnx/graph-builder.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { deepMerge, type TrainConfig, type TrainConfigInput } from '../../trainer/src/config/config.ts';
import { resolveConfig, type PresetOverride } from '../../trainer/src/config/presets.ts';

export const TINY_ONNX = { side: 32, channels: [8, 8, 16], grid: 8 };

/** The tiny graph written to `path` as a frozen backbone on float kernels, as the cub200 preset runs MobileNetV2. */
export function tinyOnnxBackboneConfig(path: string) {
  return {
    kind: 'onnx',
    path,
    tap: 'auto',
    preprocess: { size: TINY_ONNX.side, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    compute: 'float',
    threads: 1,
  } satisfies TrainConfigInput['backbone'];
}

/** Add-on layers sized for the tiny graph's 16 channels. */
export const TINY_ONNX_ADD_ON = [
  { channels: 16, activation: 'relu' },
  { channels: 8, activation: 'l2norm' },
] satisfies TrainConfigInput['head']['addOn'];

/**
 * A CUB preset (cub200 unless named) shrunk to the tiny graph at `path`: wasm, 3 validation images per class, the
 * tiny add-on, one push-tune epoch, no pruning, and a bundle without part metrics. `override` is merged over it (per
 * field, as a config file is over a preset).
 */
export function tinyOnnxRunConfig(
  path: string,
  override: PresetOverride<TrainConfigInput>,
  preset: 'cub200' | 'cub200-finetune' = 'cub200',
): TrainConfig {
  const base: PresetOverride<TrainConfigInput> = {
    backend: 'wasm',
    data: { valPerClass: 3 },
    backbone: tinyOnnxBackboneConfig(path),
    head: { addOn: TINY_ONNX_ADD_ON },
    pushTune: { epochs: 1, batchSize: 16 },
    prune: { mode: 'off' },
    bundle: { enabled: true, nearest: 2, partMetrics: false },
  };
  return resolveConfig(preset, deepMerge(base, override));
}

/** `input`: the graph input's name (the model zoo's MobileNetV2 says 'input'). */
export function tinyQLinearBackbone(seed: number, input = 'input'): Uint8Array {
  const rng = new Rng(seed);
  const g = new GraphBuilder(13, [input]);
  const typed = (base: string, type: number, dims: number[], data: number[]) => {
    const name = g.fresh(base);
    g.initializers.set(name, { name, dims, type, data });
    return name;
  };
  const scale = (base: string, v: number | number[]) =>
    g.floatInit(base, Array.isArray(v) ? [v.length] : [], Array.isArray(v) ? v : [v]);
  const u8 = (base: string, v: number) => typed(base, OnnxDataType.UINT8, [], [v]);
  const int8s = (n: number) => Array.from({ length: n }, () => Math.round((rng.next() * 2 - 1) * 110));

  let x = g.add('QuantizeLinear', [input, scale('x_s', 0.02), u8('x_zp', 110)], 'x_q');
  let [xs, xzp] = ['x_s', 'x_zp'];
  const conv = (
    name: string,
    cin: number,
    cout: number,
    k: number,
    stride: number,
    group: number,
    wScale: number,
    yScale: number,
  ) => {
    const per = cin / group;
    const w = typed(`${name}_w`, OnnxDataType.INT8, [cout, per, k, k], int8s(cout * per * k * k));
    const ws = scale(
      `${name}_w_s`,
      Array.from({ length: cout }, () => wScale * (0.7 + 0.6 * rng.next())),
    );
    const wzp = typed(`${name}_w_zp`, OnnxDataType.INT8, [cout], new Array<number>(cout).fill(0));
    const b = typed(
      `${name}_b`,
      OnnxDataType.INT32,
      [cout],
      Array.from({ length: cout }, () => Math.round((rng.next() - 0.3) * 400)),
    );
    const ys = scale(`${name}_y_s`, yScale);
    const yzp = u8(`${name}_y_zp`, 0); // range [0, 255 * yScale]: a folded ReLU
    const pad = (k - 1) / 2;
    x = g.add('QLinearConv', [x, xs, xzp, w, ws, wzp, ys, yzp, b], name, {
      kernel_shape: [k, k],
      strides: [stride, stride],
      pads: [pad, pad, pad, pad],
      group,
    });
    [xs, xzp] = [ys, yzp];
  };
  const [c1, c2, c3] = TINY_ONNX.channels;
  conv('conv1', 3, c1, 3, 2, 1, 0.004, 0.02);
  conv('conv2_dw', c1, c2, 3, 2, c2, 0.008, 0.025);
  conv('conv3', c2, c3, 1, 1, 1, 0.006, 0.03);
  const ps = scale('pool_s', 0.01);
  const pzp = u8('pool_zp', 0);
  const pooled = g.add(
    'QLinearGlobalAveragePool',
    [x, xs, xzp, ps, pzp],
    'pool_q',
    { channels_last: 0 },
    { domain: 'com.microsoft' },
  );
  const flat = g.add('Flatten', [g.add('DequantizeLinear', [pooled, ps, pzp], 'pool')], 'flat');
  g.add(
    'Gemm',
    [
      flat,
      g.floatInit(
        'fc_w',
        [5, c3],
        Array.from({ length: 5 * c3 }, () => rng.normal()),
      ),
      g.floatInit('fc_b', [5], [0, 0, 0, 0, 0]),
    ],
    'logits',
    { transB: 1 },
    { output: 'logits' },
  );
  const { nodes, initializers } = g.encode();
  const graph = makeGraph({
    name: 'tiny_qlinear',
    nodes,
    initializers,
    inputs: [makeValueInfo(input, OnnxDataType.FLOAT, ['N', 3, TINY_ONNX.side, TINY_ONNX.side])],
    outputs: [makeValueInfo('logits', OnnxDataType.FLOAT, ['N', 5])],
  });
  return encodeModel(makeModel(graph, { '': 13, 'com.microsoft': 1 }));
}

import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOnnxBackbone } from '../../trainer/src/backbone/onnx-backbone.ts';
import {
  OnnxDataType,
  decodeModel,
  encodeModel,
  makeAttribute,
  makeGraph,
  makeModel,
  makeNode,
  makeTensor,
  makeValueInfo,
  opsetImports,
} from '../../trainer/src/onnx/onnx-proto.ts';
import type { createSmallCnn } from '../../trainer/src/backbone/small-cnn.ts';
import type { PreprocessSpec } from '../../trainer/src/backbone/types.ts';
import { toNHWC } from '../../trainer/src/data/decode.ts';
import type { RgbImage } from '../../trainer/src/data/types.ts';
import { exportOpset, tapOnnxBackbone } from '../../trainer/src/export/backbone-graph.ts';
import { checkModel } from '../../trainer/src/onnx/check-graph.ts';
import { buildProtoPNetOnnx, exportOnnx, verifyExport } from '../../trainer/src/export/export-onnx.ts';
import { headExportWeights } from '../../trainer/src/export/head-graph.ts';
import type { ActivationName } from '../../trainer/src/head/activations.ts';
import type { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { saveModel } from '../../trainer/src/model/model-file.ts';
import { resolveConfig } from '../../trainer/src/config/presets.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { HAS_MOBILENET, MOBILENET_ONNX, NO_DATA_NOTE, cleanup, tempDir } from '../backbone/helpers.ts';
import {
  headReference,
  maxAbsDiff,
  randomHead,
  randomValues,
  runOrt,
  toNchw,
  useCpuBackend,
  randomSmallCnnRun,
} from './helpers.ts';

beforeAll(useCpuBackend);

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map(cleanup));
});
async function scratch(prefix: string): Promise<string> {
  const d = await tempDir(`export-${prefix}`);
  dirs.push(d);
  return d;
}

/** Seeded RGB photos of size x size. */
function images(n: number, size: number, seed: number): RgbImage[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => ({
    width: size,
    height: size,
    data: Uint8Array.from({ length: size * size * 3 }, () => rng.int(256)),
  }));
}

/** NHWC 0..255 floats of the same photos (the 'nhwc-rgb255' input). */
function pixels(imgs: RgbImage[]): Float32Array {
  const out = new Float32Array(imgs.reduce((a, im) => a + im.data.length, 0));
  let o = 0;
  for (const im of imgs) {
    out.set(im.data, o);
    o += im.data.length;
  }
  return out;
}

interface Parity {
  logits: number;
  similarities: number;
  distances: number;
}

function parity(out: Record<string, ort.Tensor>, ref: ReturnType<typeof headReference>): Parity {
  return {
    logits: maxAbsDiff(out.logits.data as Float32Array, ref.logits),
    similarities: maxAbsDiff(out.similarities.data as Float32Array, ref.similarities),
    distances: maxAbsDiff(out.distances.data as Float32Array, ref.distances),
  };
}

describe('exportOnnx on a small-CNN run dir', () => {
  const size = 24;
  const n = 3;
  const classes = ['a', 'b', 'c'];
  const addOn: { channels: number; activation: ActivationName }[] = [
    { channels: 12, activation: 'relu' },
    { channels: 6, activation: 'l2norm' },
  ];
  let run = '';
  let head: ProtoHead;
  let cnn: ReturnType<typeof createSmallCnn>;
  let pre: PreprocessSpec;

  beforeAll(async () => {
    run = await scratch('cnn');
    ({ cnn, head } = await randomSmallCnnRun(run, {
      size,
      channels: [4, 8],
      addOn,
      prototypesPerClass: 2,
      classes,
      cnnSeed: 5,
      headSeed: 9,
    }));
    pre = cnn.preprocess;
  });

  afterAll(async () => {
    head.dispose();
    await cnn.dispose();
  });

  /** The trainer's forward (backbone in inference mode, then the head) on the photos. */
  function reference(imgs: RgbImage[]): ReturnType<typeof headReference> {
    const x = toNHWC(imgs, pre, false);
    const f = tf.tidy(() => cnn.apply(tf.tensor4d(x, [imgs.length, size, size, 3]), false));
    const [b, h, w, c] = f.shape;
    const ref = headReference(head, f.dataSync() as Float32Array, [b, h, w, c]);
    f.dispose();
    return ref;
  }

  it('writes a valid model whose outputs match the trainer (NCHW normalised input)', async () => {
    const out = join(run, 'export', 'model.onnx');
    const r = await exportOnnx(run, out);
    const bytes = await readFile(out);
    expect((await stat(out)).size).toBe(r.bytes);
    expect(checkModel(bytes)).toEqual({ opset: 13, problems: [] });
    expect(r.opset).toBe(13);
    expect(r.input).toMatchObject({
      name: 'image',
      layout: 'NCHW',
      shape: ['N', 3, size, size],
      format: 'nchw-normalized',
      preprocess: pre,
    });
    expect(r.outputs).toEqual([
      { name: 'logits', shape: ['N', 3] },
      { name: 'similarities', shape: ['N', 6] },
      { name: 'distances', shape: ['N', 6, 6, 6] },
    ]);
    expect(r.manifest.inputs).toEqual([{ name: 'image', shape: ['N', 3, size, size], layout: 'NCHW' }]);
    expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);

    const imgs = images(n, size, 1);
    const x = toNchw(toNHWC(imgs, pre, false), n, size, size, 3);
    const res = await runOrt(bytes, { image: new ort.Tensor('float32', x, [n, 3, size, size]) });
    const p = parity(res, reference(imgs));
    expect(p.logits).toBeLessThan(1e-4);
    expect(p.similarities).toBeLessThan(1e-4);
    expect(p.distances).toBeLessThan(1e-4);
  });

  it('takes 0..255 NHWC pixels with normalisation in the graph', async () => {
    const out = join(run, 'export', 'model-rgb255.onnx');
    const r = await exportOnnx(run, out, { input: 'nhwc-rgb255' });
    expect(r.input).toMatchObject({
      name: 'image',
      layout: 'NHWC',
      shape: ['N', size, size, 3],
      format: 'nhwc-rgb255',
    });
    const imgs = images(n, size, 2);
    const res = await runOrt(await readFile(out), {
      image: new ort.Tensor('float32', pixels(imgs), [n, size, size, 3]),
    });
    const p = parity(res, reference(imgs));
    expect(p.logits).toBeLessThan(1e-4);
    expect(p.similarities).toBeLessThan(1e-4);
    expect(p.distances).toBeLessThan(1e-4);
  });

  it('refuses a head whose input channels do not match the backbone', () => {
    const wrong = randomHead(
      { inputChannels: 5, addOn: [], numClasses: 2, prototypesPerClass: 1, incorrectClassWeight: -0.5 },
      1,
    );
    expect(() => buildProtoPNetOnnx({ kind: 'layers', model: cnn.model }, headExportWeights(wrong), pre)).toThrow(
      /backbone gives 8 channels, the head expects 5/,
    );
    wrong.dispose();
  });

  it('says where no model is', async () => {
    await expect(exportOnnx(join(run, 'nope'), join(run, 'x.onnx'))).rejects.toThrow(/no trained model/);
  });
});

// ---- ONNX backbones ----------------------------------------------------------

const TINY = { side: 8, cIn: 3, cOut: 6, scale: 0.02, zeroPoint: 3 };

/**
 * A tiny int8-style classifier: X[N,3,8,8] → Conv3x3/2 (+bias) → Relu → QuantizeLinear
 * → QLinearGlobalAveragePool (com.microsoft) → DequantizeLinear → Flatten → Y.
 * 'auto' taps the quantised Relu output, as on MobileNetV2-int8. `prefix` nodes
 * (opset-12 Unsqueeze/Squeeze) sit on the kept path when asked.
 */
function tinyOnnxBackbone(opset: number, withSqueeze = false): Uint8Array {
  const { side, cIn, cOut, scale, zeroPoint } = TINY;
  const w = randomValues(cOut * cIn * 9, 31, 0.4);
  const bias = randomValues(cOut, 32, 0.2);
  const pre = withSqueeze
    ? [
        makeNode('Unsqueeze', ['X'], ['X5'], { attributes: [makeAttribute('axes', [0])] }),
        makeNode('Squeeze', ['X5'], ['X4'], { attributes: [makeAttribute('axes', [0])] }),
      ]
    : [];
  const graph = makeGraph({
    name: 'tiny_int8',
    nodes: [
      ...pre,
      makeNode('Conv', [withSqueeze ? 'X4' : 'X', 'W', 'B'], ['conv'], {
        attributes: [
          makeAttribute('kernel_shape', [3, 3]),
          makeAttribute('strides', [2, 2]),
          makeAttribute('pads', [1, 1, 1, 1]),
        ],
      }),
      makeNode('Relu', ['conv'], ['relu']),
      makeNode('QuantizeLinear', ['relu', 's', 'zp'], ['relu_q']),
      makeNode('QLinearGlobalAveragePool', ['relu_q', 's', 'zp', 's', 'zp'], ['pool_q'], {
        domain: 'com.microsoft',
        attributes: [makeAttribute('channels_last', 0)],
      }),
      makeNode('DequantizeLinear', ['pool_q', 's', 'zp'], ['pool']),
      makeNode('Flatten', ['pool'], ['Y']),
    ],
    initializers: [
      makeTensor('W', OnnxDataType.FLOAT, [cOut, cIn, 3, 3], w),
      makeTensor('B', OnnxDataType.FLOAT, [cOut], bias),
      makeTensor('s', OnnxDataType.FLOAT, [], [scale]),
      makeTensor('zp', OnnxDataType.UINT8, [], [zeroPoint]),
    ],
    inputs: [makeValueInfo('X', OnnxDataType.FLOAT, ['batch', cIn, side, side])],
    outputs: [makeValueInfo('Y', OnnxDataType.FLOAT, ['batch', cOut])],
  });
  return encodeModel(makeModel(graph, { '': opset, 'com.microsoft': 1 }, 7));
}

const IMAGENET: PreprocessSpec = { size: TINY.side, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** The trainer's path for an ONNX backbone: onnx-backbone.ts features (NHWC), then the head. */
async function onnxReference(
  path: string,
  pre: PreprocessSpec,
  head: ProtoHead,
  imgs: RgbImage[],
  compute: 'int8' | 'float' = 'int8',
): Promise<ReturnType<typeof headReference>> {
  const bb = await loadOnnxBackbone({ path, preprocess: pre, threads: 1, compute });
  try {
    const f = await bb.extract(toNHWC(imgs, pre, false), imgs.length);
    const [h, w, c] = bb.featureShape;
    return headReference(head, f, [imgs.length, h, w, c]);
  } finally {
    await bb.dispose();
  }
}

describe('ONNX backbone + head', () => {
  const headSpec = {
    inputChannels: TINY.cOut,
    addOn: [
      { channels: 8, activation: 'relu' as const },
      { channels: 4, activation: 'sigmoid' as const },
    ],
    numClasses: 3,
    prototypesPerClass: 2,
    incorrectClassWeight: -0.5,
  };

  for (const opset of [12, 13]) {
    it(`taps the dequantised feature map and matches onnx-backbone.ts + head (source opset ${opset})`, async () => {
      const dir = await scratch('tiny-onnx');
      const path = join(dir, 'tiny.onnx');
      await writeFile(path, tinyOnnxBackbone(opset));
      const head = randomHead(headSpec, 17);
      const e = buildProtoPNetOnnx({ kind: 'onnx', bytes: await readFile(path) }, headExportWeights(head), IMAGENET);
      expect(e.opset).toBe(13); // opset 12 is raised: nothing on the kept path changed at 13
      const model = decodeModel(e.bytes);
      expect(opsetImports(model).get('')).toBe(13);
      expect(checkModel(model).problems).toEqual([]);
      const ops = model.graph.nodes.map((nd) => nd.opType);
      expect(ops.slice(0, 4)).toEqual(['Conv', 'Relu', 'QuantizeLinear', 'DequantizeLinear']);
      expect(ops).not.toContain('QLinearGlobalAveragePool'); // the classifier is pruned
      expect(ops).not.toContain('Flatten');
      expect(model.graph.inputs.map((i) => [i.name, i.shape])).toEqual([['image', ['N', 3, 8, 8]]]);

      const imgs = images(2, TINY.side, 5);
      const ref = await onnxReference(path, IMAGENET, head, imgs);
      const x = toNchw(toNHWC(imgs, IMAGENET, false), 2, TINY.side, TINY.side, 3);
      const res = await runOrt(e.bytes, { image: new ort.Tensor('float32', x, [2, 3, TINY.side, TINY.side]) });
      expect(res.distances.dims).toEqual([2, 6, 4, 4]);
      const p = parity(res, ref);
      expect(p.logits).toBeLessThan(1e-4);
      expect(p.similarities).toBeLessThan(1e-4);
      expect(p.distances).toBeLessThan(1e-4);
      head.dispose();
    });
  }

  it('refuses to relabel an opset-12 graph whose kept nodes changed at 13', () => {
    expect(() => exportOpset(tapOnnxBackbone(tinyOnnxBackbone(12, true)))).toThrow(
      /Unsqueeze, Squeeze nodes that changed in opset 13/,
    );
    expect(exportOpset(tapOnnxBackbone(tinyOnnxBackbone(13, true)))).toBe(13);
  });

  for (const compute of ['int8', 'float'] as const) {
    it(`exports a run dir with an ONNX backbone (compute ${compute}), filling H and W from a check run`, async () => {
      const run = await scratch(`onnx-run-${compute}`);
      const path = join(run, 'tiny.onnx');
      await writeFile(path, tinyOnnxBackbone(13));
      const config = resolveConfig('cub200', {
        backend: 'cpu',
        backbone: { kind: 'onnx', path, tap: 'auto', preprocess: IMAGENET, compute },
        head: { addOn: headSpec.addOn, prototypesPerClass: 2 },
        featureCacheDir: join(run, 'cache'),
      });
      const head = randomHead(headSpec, 23);
      await saveModel(join(run, 'model'), {
        config,
        classes: ['x', 'y', 'z'],
        head,
        backbone: null,
        push: null,
        trainItems: [],
        pruning: null,
      });
      const out = join(run, 'model.onnx');
      const r = await exportOnnx(run, out, { input: 'nhwc-rgb255' });
      // The tapped tiny graph has no value info for the tap, so H and W come from the check run.
      expect(r.outputs.find((o) => o.name === 'distances')!.shape).toEqual(['N', 6, 4, 4]);
      expect(decodeModel(await readFile(out)).graph.outputs.find((o) => o.name === 'distances')!.shape).toEqual([
        'N',
        6,
        4,
        4,
      ]);
      expect(r.sessionMs).toBeGreaterThan(0);

      const imgs = images(2, TINY.side, 6);
      const ref = await onnxReference(path, IMAGENET, head, imgs, compute);
      const res = await runOrt(await readFile(out), {
        image: new ort.Tensor('float32', pixels(imgs), [2, TINY.side, TINY.side, 3]),
      });
      const p = parity(res, ref);
      // The in-graph normalisation rounds like toNHWC, but one ulp at the input can move a uint8 step at the tap.
      expect(p.similarities).toBeLessThan(1e-3);
      expect(p.logits).toBeLessThan(1e-3);
      if (compute === 'float')
        expect(decodeModel(await readFile(out)).graph.nodes.some((n) => n.opType === 'QLinearConv')).toBe(false);
      head.dispose();
    });
  }

  describe.skipIf(!HAS_MOBILENET)(
    `real MobileNetV2-12 int8${HAS_MOBILENET ? '' : ` (skipped: ${NO_DATA_NOTE})`}`,
    () => {
      it('matches loadOnnxBackbone + head with a random head', async () => {
        const pre: PreprocessSpec = { size: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
        const head = randomHead(
          {
            inputChannels: 1280,
            addOn: [
              { channels: 32, activation: 'relu' },
              { channels: 16, activation: 'l2norm' },
            ],
            numClasses: 4,
            prototypesPerClass: 3,
            incorrectClassWeight: -0.5,
          },
          41,
        );
        const e = buildProtoPNetOnnx(
          { kind: 'onnx', bytes: await readFile(MOBILENET_ONNX) },
          headExportWeights(head),
          pre,
        );
        expect(e.opset).toBe(13);
        const model = decodeModel(e.bytes);
        expect(checkModel(model).problems).toEqual([]);
        const ops = model.graph.nodes.map((nd) => nd.opType);
        expect(ops.filter((o) => o === 'QLinearConv')).toHaveLength(52);
        expect(ops).not.toContain('QLinearMatMul'); // classifier dropped
        // No value info for the tap in this file: symbolic until a check run measures them.
        expect(e.outputs.find((o) => o.name === 'distances')!.shape).toEqual(['N', 12, 'H', 'W']);
        expect((await verifyExport(e)).outputs.find((o) => o.name === 'distances')!.shape).toEqual(['N', 12, 7, 7]);

        const imgs = images(2, 224, 8);
        const ref = await onnxReference(MOBILENET_ONNX, pre, head, imgs);
        const x = toNchw(toNHWC(imgs, pre, false), 2, 224, 224, 3);
        const res = await runOrt(e.bytes, { image: new ort.Tensor('float32', x, [2, 3, 224, 224]) });
        const p = parity(res, ref);
        expect(p.logits).toBeLessThan(1e-3);
        expect(p.similarities).toBeLessThan(1e-3);
        expect(p.distances).toBeLessThan(1e-3);
        head.dispose();
      });
    },
  );
});

/**
 * int8InFloat (trainer/bench/int8-in-float.ts), measured in trainer/bench/export-web.ts, not deployed:
 * its numbers must still be the int8 model's for the measurements to mean anything.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { int8InFloat } from '../../trainer/bench/int8-in-float.ts';
import { insertTap } from '../../trainer/src/backbone/onnx-tap.ts';
import { decodeModel, encodeModel, makeNode } from '../../trainer/src/onnx/onnx-proto.ts';
import { HAS_MOBILENET, MOBILENET_ONNX, NO_DATA_NOTE } from '../backbone/helpers.ts';
import { maxAbsDiff, randomValues } from '../export/helpers.ts';
import { count, runOutput, tinyQOperator } from '../export/qoperator-fixture.ts';

describe('int8InFloat (the whole QOperator graph on float kernels, same numbers)', () => {
  const x = randomValues(4 * 3 * 81, 23, 1.5);
  const dims = [4, 3, 9, 9];
  it('converts every quantised op and reproduces the int8 outputs bit for bit (onnxruntime-node and -web)', async () => {
    const src = tinyQOperator();
    const r = int8InFloat(src);
    expect(r.converted).toEqual({ QuantizeLinear: 1, QLinearConv: 3, DequantizeLinear: 1 });
    for (const op of ['QLinearConv', 'QuantizeLinear', 'DequantizeLinear']) expect(count(r.bytes, op)).toBe(0);
    const ref = await runOutput(src, x, dims, 'y', 'node');
    expect(new Set(ref).size).toBeGreaterThan(10);
    const same = async (runtime: 'node' | 'web') =>
      maxAbsDiff(Float32Array.from(await runOutput(r.bytes, x, dims, 'y', runtime)), Float32Array.from(ref));
    expect(await same('node')).toBe(0);
    expect(await same('web')).toBe(0);
  });
  it('refuses a graph with a quantised op it has no float form for', () => {
    const m = decodeModel(tinyQOperator());
    m.graph.nodes.splice(
      4,
      1,
      makeNode('QLinearGlobalAveragePool', ['a3', 'a3s', 'a3z', 'a3s', 'a3z'], ['y'], { domain: 'com.microsoft' }),
    );
    expect(() => int8InFloat(encodeModel(m))).toThrow(/QLinearGlobalAveragePool .* reads the quantised tensor a3/);
  });
});

describe.skipIf(!HAS_MOBILENET)(
  `int8InFloat on the real MobileNetV2-12 int8${HAS_MOBILENET ? '' : ` (skipped: ${NO_DATA_NOTE})`}`,
  () => {
    it('int8InFloat keeps the tapped feature map bit for bit (QLinearAdd included)', async () => {
      const t = insertTap(await readFile(MOBILENET_ONNX), { tap: 'auto' });
      const m = decodeModel(t.bytes);
      const floatOnly = encodeModel({
        ...m,
        graph: { ...m.graph, outputs: m.graph.outputs.filter((o) => o.name === t.floatOutput) },
      });
      const r = int8InFloat(floatOnly);
      expect(r.converted['com.microsoft:QLinearAdd']).toBe(10);
      const img = randomValues(3 * 224 * 224, 6, 1.2);
      const ref = await runOutput(floatOnly, img, [1, 3, 224, 224], t.floatOutput, 'node');
      // The same values (a -0 may stand for a +0).
      expect(
        maxAbsDiff(
          Float32Array.from(await runOutput(r.bytes, img, [1, 3, 224, 224], t.floatOutput, 'node')),
          Float32Array.from(ref),
        ),
      ).toBe(0);
    });
  },
);

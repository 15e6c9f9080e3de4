import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { activationBox, type Box } from '@protoatlas/shared';
import { syntheticPartCoverage, type PrototypeBox } from '../../trainer/src/analysis/part-metrics.ts';
import { sourceDistanceMaps } from '../../trainer/src/bundle/source-maps.ts';
import { decodeImage } from '../../trainer/src/data/decode.ts';
import { generateSynthetic } from '../../trainer/src/data/synthetic.ts';
import type { SyntheticManifest } from '../../trainer/src/data/synthetic-manifest.ts';
import { ProtoHead } from '../../trainer/src/head/proto-head.ts';
import { Rng } from '../../trainer/src/core/rng.ts';
import { pushPrototypes } from '../../trainer/src/stages/push.ts';
import { memorySource } from '../support/memory-source.ts';

/**
 * A hand-made, transparent backbone: per 8x8 cell of the 56 px image, the
 * mean colour and the share of pixels in each saturated part colour. Wing
 * bars, crests and eye rings then have unmistakable features, so the test
 * checks the geometry (push -> activation map -> 95th-percentile box in
 * source pixels) against the generator's true part boxes.
 */
const PALETTE: [string, (r: number, g: number, b: number) => boolean][] = [
  ['yellow', (r, g, b) => r > 190 && g > 160 && b < 110],
  ['red', (r, g, b) => r > 160 && g < 90 && b < 90],
  ['blue', (r, _g, b) => b > 160 && r < 110],
  ['white', (r, g, b) => r > 215 && g > 215 && b > 215],
];
const SIZE = 56;
const CELL = 8;
const G = SIZE / CELL;
const D = 3 + PALETTE.length;

function cellFeatures(rgb: Uint8Array): Float32Array {
  const out = new Float32Array(G * G * D);
  for (let cy = 0; cy < G; cy++) {
    for (let cx = 0; cx < G; cx++) {
      const f = out.subarray((cy * G + cx) * D, (cy * G + cx + 1) * D);
      for (let y = cy * CELL; y < (cy + 1) * CELL; y++) {
        for (let x = cx * CELL; x < (cx + 1) * CELL; x++) {
          const i = (y * SIZE + x) * 3;
          const [r, g, b] = [rgb[i], rgb[i + 1], rgb[i + 2]];
          f[0] += r / 255;
          f[1] += g / 255;
          f[2] += b / 255;
          PALETTE.forEach(([, test], k) => (f[3 + k] += test(r, g, b) ? 4 : 0));
        }
      }
      for (let k = 0; k < D; k++) f[k] /= CELL * CELL;
    }
  }
  return out;
}

describe('prototype boxes on synthetic birds', () => {
  let manifest: SyntheticManifest;
  let keys: string[];
  let feats: Float32Array;
  let labels: Int32Array;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    const root = join(await mkdtemp(join(tmpdir(), 'protoatlas-parts-')), 'data');
    manifest = await generateSynthetic(root, { classes: 4, trainPerClass: 12, testPerClass: 0, seed: 5 });
    keys = Object.keys(manifest.images)
      .filter((k) => manifest.images[k].split === 'train')
      .sort();
    feats = new Float32Array(keys.length * G * G * D);
    for (const [i, k] of keys.entries())
      feats.set(cellFeatures((await decodeImage(join(root, k), { size: SIZE })).data), i * G * G * D);
    labels = Int32Array.from(keys, (k) => manifest.images[k].label);
  }, 60_000);

  it("push puts each wing-bar prototype on its class's wing bar, and its box covers the part", async () => {
    const source = memorySource(feats, [G, G, D], labels);
    const C = manifest.classes.length;
    const head = new ProtoHead(
      { inputChannels: D, addOn: [], numClasses: C, prototypesPerClass: 1, incorrectClassWeight: -0.5 },
      new Rng(0),
    );
    // Start each prototype at the idea of its class's wing bar: a cell mostly of that colour.
    const init = new Float32Array(C * D);
    manifest.classes.forEach((cls, c) => {
      const colour = cls.attributes.wingbar;
      const k = PALETTE.findIndex(([name]) => name === colour);
      if (k >= 0) init[c * D + 3 + k] = 3;
    });
    head.prototypes.assign(tf.tensor2d(init, [C, D]));
    const records = await pushPrototypes(head, source, { quiet: true });
    const maps = sourceDistanceMaps(
      head,
      source,
      records.map((r) => r.item),
    );
    const boxes: PrototypeBox[] = [];
    records.forEach((r, j) => {
      if (!manifest.classes[r.classIndex].attributes.wingbar) return;
      const img = manifest.images[keys[r.item]];
      const box: Box = activationBox(
        { data: maps[j]!, prototypes: 1, height: G, width: G, layout: 'prototype-major' },
        0,
        manifest.size,
        manifest.size,
      );
      boxes.push({ prototype: j, classId: r.classIndex, imageKey: keys[r.item], box });
      expect(img.label).toBe(r.classIndex);
    });
    expect(boxes.length).toBeGreaterThanOrEqual(2);
    const result = syntheticPartCoverage(manifest, boxes);
    expect(result.perPrototype.map((p) => p.coveredPart)).toEqual(boxes.map(() => 'wingbar'));
    expect(result.coverage).toBe(1);
    // The same boxes moved to the opposite corner cover nothing.
    const moved = boxes.map((b) => ({ ...b, box: { ...b.box, x: manifest.size - b.box.x - b.box.w, y: 0 } }));
    expect(syntheticPartCoverage(manifest, moved).coverage).toBeLessThan(0.5);
  });
});

import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { contributions, logSimilarity, ManifestError, type Manifest } from '@protoatlas/shared';
import { explainImage } from '../../trainer/src/analysis/explain-image.ts';
import { buildBundle } from '../../trainer/src/bundle/build-bundle.ts';
import { bundleIsCurrent } from '../../trainer/src/bundle/bundle-status.ts';
import { loadBundleRunner, readBundle } from '../../trainer/src/bundle/read-bundle.ts';
import { trainRun } from '../../trainer/src/run/train-run.ts';
import { decodeImage } from '../../trainer/src/data/decode.ts';
import { DatasetError } from '../../trainer/src/data/errors.ts';
import * as ort from 'onnxruntime-node';
import { imagesUnder, tinyConfig, tinySyntheticData } from './tiny-run.ts';

process.env.PROTOATLAS_QUIET = '1';

const argmax = (a: ArrayLike<number>) => Array.from(a).reduce((best, v, i, arr) => (v > arr[best] ? i : best), 0);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('model bundle and local explanations', () => {
  let dir: string;
  let run: string;
  let bundle: string;
  let manifest: Manifest;

  beforeAll(async () => {
    dir = await tinySyntheticData(3, 20, 4);
    run = join(dir, 'run');
    const config = tinyConfig(join(dir, 'cache'), {
      pushTune: { epochs: 1, batchSize: 16, lr: { features: 0, addOn: 1e-3, prototypes: 0, lastLayer: 0 } },
      prune: { mode: 'on', k: 6, threshold: 3 },
      bundle: { enabled: true, nearest: 3, partMetrics: true },
    });
    await trainRun({ config, dataDir: join(dir, 'data'), outDir: run, resume: false, quiet: true });
    bundle = join(run, 'bundle');
    manifest = (await readBundle(bundle)).manifest;
  }, 300_000);

  it('writes a valid manifest with every prototype, its pictures and its neighbours', async () => {
    expect(manifest.classes).toHaveLength(3);
    expect(manifest.prototypes).toHaveLength(6);
    expect(manifest.dataset).toMatchObject({ layout: 'synthetic', train: 3 * 17, val: 9 });
    expect(manifest.curves.map((c) => c.stage)).toEqual([
      'warmup',
      'joint',
      'joint',
      'joint',
      'pushTune',
      'lastLayer',
      'lastLayer',
      'lastLayer',
    ]);
    const model = JSON.parse(await readFile(join(run, 'model', 'model.json'), 'utf8'));
    for (const p of manifest.prototypes) {
      const src = p.source!;
      expect(src).not.toBeNull();
      expect(src.imageId).toBe(model.prototypes[p.id].imageId);
      // Boxes lie inside their images.
      for (const b of [src.box, src.patchBox, ...p.nearest.train.map((n) => n.box)]) {
        expect(b.x + b.w).toBeLessThanOrEqual(src.width);
        expect(b.y + b.h).toBeLessThanOrEqual(src.height);
      }
      for (const f of [p.files!.crop, p.files!.source, p.files!.heatmap, ...p.nearest.train.map((n) => n.file!)]) {
        const meta = await sharp(join(bundle, f)).metadata();
        expect(meta.format).toBe('webp');
      }
      expect(p.nearest.train).toHaveLength(3);
      expect(p.nearest.val).toHaveLength(3);
      // Nearest first, and never the prototype's own source image.
      const d = p.nearest.train.map((n) => n.distance);
      expect([...d].sort((a, b) => a - b)).toEqual(d);
      expect(p.nearest.train.some((n) => n.imageId === src.imageId)).toBe(false);
      expect(p.purity).toBe(p.nearest.train.filter((n) => n.classId === p.classId).length / 3);
      expect(p.weights).toHaveLength(3);
    }
    expect(manifest.metrics.explanation.partCoverage).not.toBeNull();
    expect(manifest.metrics.explanation.consistency).toBeNull(); // no part annotations in synthetic data
    expect(manifest.metrics.pruning).toMatchObject({ k: 6, threshold: 3, applied: true });
    // Pruned prototypes are flagged with a reason and have an all-zero weight row.
    const pruned = manifest.prototypes.filter((p) => p.pruned);
    expect(pruned.length).toBeGreaterThan(0);
    expect(pruned.length).toBeLessThan(manifest.prototypes.length);
    expect(pruned.length).toBe(manifest.metrics.pruning!.pruned);
    for (const p of pruned) {
      expect(p.prunedReason).toMatch(/of its 6 nearest training patches/);
      expect(p.weights.every((w) => w === 0)).toBe(true);
    }
    expect(await bundleIsCurrent(run)).toBe(true);
  });

  it("explains a prototype's own source image with that prototype, at its source box", async () => {
    const runner = await loadBundleRunner(bundle, manifest, { quiet: true });
    const live = manifest.prototypes.filter((p) => !p.pruned);
    const p = live[0];
    const model = JSON.parse(await readFile(join(run, 'model', 'model.json'), 'utf8'));
    const imagePath = model.prototypes[p.id].imagePath as string;
    const result = await explainImage(runner, manifest, imagePath, { top: 3, evidence: 6 });
    const e = result.explanation;
    expect(result.width).toBe(p.source!.width);
    // The prototype sits exactly on a patch of this image: distance 0, the largest similarity there is.
    expect(e.similarities[p.id]).toBeCloseTo(logSimilarity(0), 2);
    const forClass = e.predictions.find((c) => c.classId === p.classId)!;
    const ev = forClass.evidence.find((x) => x.prototype === p.id)!;
    expect(ev.box).toEqual(p.source!.box);
    expect(ev.patch).toEqual(p.source!.patch);
    // Points contributed by all live prototypes add up to the logit.
    const model2 = {
      lastLayer: manifest.prototypes.flatMap((q) => q.weights),
      numClasses: 3,
      pruned: manifest.prototypes.map((q) => q.pruned),
    };
    for (const c of e.predictions) {
      const total = contributions(e.similarities, model2, c.classId).reduce((a, b) => a + b, 0);
      expect(Math.abs(total - c.logit)).toBeLessThan(1e-5);
    }
    expect(forClass.evidence.every((x) => !manifest.prototypes[x.prototype].pruned)).toBe(true);

    // The bundle's ONNX model (0-255 RGB in, normalised in the graph) agrees with the trainer.
    const onnx = manifest.files.onnx!;
    expect(onnx.fp32!.path).toBe('onnx/model.fp32.onnx');
    expect(onnx.inputs[0]).toMatchObject({ name: 'image', layout: 'NHWC' });
    expect(onnx.outputs.map((o) => o.name)).toEqual(['logits', 'similarities', 'distances']);
    const session = await ort.InferenceSession.create(join(bundle, onnx.fp32!.path));
    const size = manifest.preprocessing.size;
    const input = await decodeImage(imagePath, { size });
    const out = await session.run({
      image: new ort.Tensor('float32', Float32Array.from(input.data), [1, size, size, 3]),
    });
    const logits = out.logits.data as Float32Array;
    // The trainer's logits count pruned prototypes as 0 too (their weights are 0).
    e.logits.forEach((l, c) => expect(Math.abs(logits[c] - l)).toBeLessThan(1e-3));
    await session.release();
    // The deployed int8 variant is smaller and gives the same answer.
    expect(onnx.int8!.path).toBe('onnx/model.int8.onnx');
    expect(onnx.int8!.bytes).toBeLessThan(onnx.fp32!.bytes);
    const q = await ort.InferenceSession.create(join(bundle, onnx.int8!.path));
    const qOut = await q.run({ image: new ort.Tensor('float32', Float32Array.from(input.data), [1, size, size, 3]) });
    expect(argmax(qOut.logits.data as Float32Array)).toBe(argmax(logits));
    await q.release();
  }, 120_000);

  it('the deployed int8 model gives the fp32 answers on (nearly) every image of the dataset', async () => {
    const onnx = manifest.files.onnx!;
    const open = (f: { path: string }) => ort.InferenceSession.create(join(bundle, f.path));
    const [fp32, int8] = await Promise.all([open(onnx.fp32!), open(onnx.int8!)]);
    const size = manifest.preprocessing.size;
    const photos = await imagesUnder(join(dir, 'data'));
    expect(photos.length).toBe(3 * 24);
    const agree = { top1: 0, nearest: 0 };
    const nearest = new Set<number>();
    let worstDistance = 0;
    let largestDistance = 0;
    for (const photo of photos) {
      const img = await decodeImage(photo, { size });
      const feed = { image: new ort.Tensor('float32', Float32Array.from(img.data), [1, size, size, 3]) };
      const [a, b] = [await fp32.run(feed), await int8.run(feed)];
      if (argmax(a.logits.data as Float32Array) === argmax(b.logits.data as Float32Array)) agree.top1++;
      // The most similar prototype, pruned or not: the int8 model must find the same evidence.
      const top = argmax(a.similarities.data as Float32Array);
      nearest.add(top);
      if (top === argmax(b.similarities.data as Float32Array)) agree.nearest++;
      const da = a.distances.data as Float32Array;
      worstDistance = Math.max(worstDistance, maxDiff(da, b.distances.data as Float32Array));
      largestDistance = Math.max(largestDistance, ...da);
    }
    await Promise.all([fp32.release(), int8.release()]);
    expect(nearest.size).toBeGreaterThan(2); // the images reach several prototypes
    expect(agree.top1 / photos.length).toBeGreaterThanOrEqual(0.95);
    expect(agree.nearest / photos.length).toBeGreaterThanOrEqual(0.9);
    expect(worstDistance / largestDistance).toBeLessThan(0.1);
  }, 120_000);

  it('refuses a bundle whose manifest is broken, naming the field', async () => {
    const broken = join(dir, 'broken');
    await mkdir(broken, { recursive: true });
    const m = JSON.parse(JSON.stringify(manifest));
    delete m.prototypes[2].weights;
    await writeFile(join(broken, 'manifest.json'), JSON.stringify(m));
    await expect(readBundle(broken)).rejects.toThrow(ManifestError);
    await expect(readBundle(broken)).rejects.toThrow(
      /broken\/manifest\.json is not a valid ProtoAtlas bundle manifest:\n {2}prototypes\.2\.weights: /,
    );
    await writeFile(join(broken, 'manifest.json'), '{ not json');
    await expect(readBundle(broken)).rejects.toThrow(/manifest\.json is not valid JSON/);
    await expect(readBundle(join(dir, 'nowhere'))).rejects.toThrow(/not a ProtoAtlas bundle/);
  });

  it('replaces a bundle atomically and leaves the old one when a build fails', async () => {
    const before = await stat(join(bundle, 'manifest.json'));
    const failed = buildBundle({ run, data: join(dir, 'nowhere'), quiet: true });
    await expect(failed).rejects.toThrow(DatasetError);
    await expect(failed).rejects.toThrow(/nowhere: dataset folder does not exist\. Fix: point at a folder/);
    expect((await stat(join(bundle, 'manifest.json'))).mtimeMs).toBe(before.mtimeMs);
    // A model change makes the bundle stale.
    const weights = join(run, 'model', 'weights.bin');
    const bytes = await readFile(weights);
    await writeFile(
      weights,
      Buffer.concat([bytes.subarray(0, bytes.length - 1), Buffer.from([bytes[bytes.length - 1] ^ 1])]),
    );
    expect(await bundleIsCurrent(run)).toBe(false);
    await writeFile(weights, bytes);
    await rm(join(dir, 'broken'), { recursive: true, force: true });
  });
});

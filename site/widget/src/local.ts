import type * as Ort from 'onnxruntime-web';
import { SERVED_BOX_SIDE, explain } from '../../../shared/src/explain.ts';
import type { Manifest } from '../../../shared/src/manifest.ts';
import { photoPixels } from './photo-pixels.ts';
import type { ClassifyOptions, ClassifyResponse, Provider } from './types.ts';

type OrtModule = typeof Ort;

/** What local mode reads of the manifest (no zod in the browser: the site already validated it). */
type BundleManifest = Pick<
  Manifest,
  'model' | 'classes' | 'prototypes' | 'preprocessing' | 'similarityEpsilon' | 'files'
>;

interface GpuNavigator {
  gpu?: { requestAdapter(): Promise<unknown> };
}

/** WebGPU only when an adapter really exists (headless and old browsers expose none). */
async function hasWebGpu(): Promise<boolean> {
  const gpu = (navigator as GpuNavigator).gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) != null;
  } catch {
    return false;
  }
}

/**
 * The bundle's ONNX model run by onnxruntime-web in this browser, explained by
 * the same shared code as the edge. onnxruntime is imported only here, on demand.
 */
export class LocalClassifier {
  private constructor(
    readonly provider: Provider,
    readonly precision: 'int8' | 'fp32',
    private readonly ort: OrtModule,
    private readonly session: Ort.InferenceSession,
    private readonly manifest: BundleManifest,
    private readonly bundleUrl: URL,
    private readonly lastLayer: Float32Array,
    private readonly pruned: boolean[],
  ) {}

  static async create(
    bundle: string,
    ortBase: string,
    opts: { provider: 'auto' | Provider; precision: 'auto' | 'fp32' | 'int8' },
  ): Promise<LocalClassifier> {
    const bundleUrl = new URL(bundle.endsWith('/') ? bundle : `${bundle}/`, document.baseURI);
    const res = await fetch(new URL('manifest.json', bundleUrl));
    if (!res.ok) throw new Error(`no model bundle at ${bundleUrl.href} (${res.status})`);
    const manifest = (await res.json()) as BundleManifest;
    const onnx = manifest.files?.onnx;
    const provider: Provider = opts.provider === 'wasm' ? 'wasm' : (await hasWebGpu()) ? 'webgpu' : 'wasm';
    // 'auto': int8 on wasm (what the edge runs: same answers in both modes), fp32 on WebGPU (float kernels).
    const wantInt8 = opts.precision === 'int8' || (opts.precision === 'auto' && provider === 'wasm');
    const file = (wantInt8 && onnx?.int8) || onnx?.fp32;
    const precision = file && file === onnx?.int8 ? 'int8' : 'fp32';
    if (!onnx || !file)
      throw new Error(
        'this bundle has no ONNX model for the browser: export one with `npm run export --workspace trainer -- <run dir>`',
      );
    const base = new URL(ortBase, document.baseURI);
    // The WebGPU build also carries the wasm kernels (a fallback for unsupported ops); the wasm-only build is half the size.
    const ort = (await import(
      /* @vite-ignore */ new URL(provider === 'webgpu' ? 'ort.webgpu.bundle.min.mjs' : 'ort.wasm.bundle.min.mjs', base)
        .href
    )) as OrtModule;
    ort.env.wasm.wasmPaths = base.href;
    // One thread: no worker from a blob: URL (strict CSP) and no cross-origin isolation needed.
    ort.env.wasm.numThreads = 1;
    const modelRes = await fetch(new URL(file.path, bundleUrl));
    if (!modelRes.ok) throw new Error(`could not load the model ${file.path} (${modelRes.status})`);
    const bytes = new Uint8Array(await modelRes.arrayBuffer());
    const session = await ort.InferenceSession.create(bytes, {
      executionProviders: provider === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'],
    });
    const C = manifest.classes.length;
    const lastLayer = new Float32Array(manifest.prototypes.length * C);
    manifest.prototypes.forEach((p, j) => lastLayer.set(p.weights, j * C));
    const pruned = manifest.prototypes.map((p) => p.pruned);
    return new LocalClassifier(provider, precision, ort, session, manifest, bundleUrl, lastLayer, pruned);
  }

  /** Model input side S: the photo is stretched to S x S, ignoring aspect, as in training. */
  get size(): number {
    const s = this.manifest.files.onnx?.inputs[0]?.shape[1];
    return typeof s === 'number' ? s : this.manifest.preprocessing.size;
  }

  /**
   * `file` is the photo as sent, `photo` the browser's decode of it (for its displayed size).
   * `jpegWasm`: URL of the shared JPEG decoder, so both modes feed the model the trainer's input.
   */
  async classify(file: Blob, photo: ImageBitmap, opts: ClassifyOptions, jpegWasm: string): Promise<ClassifyResponse> {
    const t0 = performance.now();
    const S = this.size;
    const rgb = await photoPixels(file, photo, S, jpegWasm);
    // NHWC RGB 0..255: normalisation happens inside the exported graph.
    const input = Float32Array.from(rgb);
    const t1 = performance.now();
    const name = this.manifest.files.onnx?.inputs[0]?.name ?? 'image';
    const out = await this.session.run({ [name]: new this.ort.Tensor('float32', input, [1, S, S, 3]) });
    const distances = out.distances;
    if (!distances) throw new Error('the model has no "distances" output');
    const [, m, H, W] = distances.dims;
    const data = (await distances.getData()) as Float32Array;
    const t2 = performance.now();
    const C = this.manifest.classes.length;
    const e = explain(
      { data, prototypes: m, height: H, width: W, layout: 'prototype-major' },
      { lastLayer: this.lastLayer, numClasses: C, pruned: this.pruned, epsilon: this.manifest.similarityEpsilon },
      { width: photo.width, height: photo.height },
      { ...opts, boxMaxSide: SERVED_BOX_SIDE },
    );
    const t3 = performance.now();
    const picture = (j: number, kind: 'crop' | 'source' | 'heatmap') => {
      const f = this.manifest.prototypes[j]?.files;
      return f ? new URL(f[kind], this.bundleUrl).href : null;
    };
    return {
      model: { id: this.manifest.model.id, version: this.manifest.model.version, precision: this.precision },
      predictions: e.predictions.map((p) => ({
        classId: p.classId,
        label: this.manifest.classes[p.classId]?.name ?? `class ${p.classId}`,
        key: this.manifest.classes[p.classId]?.key ?? String(p.classId),
        probability: p.probability,
        logit: p.logit,
        evidence: p.evidence.map((v) => ({
          prototypeId: v.prototype,
          prototypeClassId: this.manifest.prototypes[v.prototype].classId,
          similarity: v.similarity,
          weight: v.weight,
          contribution: v.contribution,
          box: v.box,
          prototypeImageUrl: picture(v.prototype, 'crop'),
          sourceImageUrl: picture(v.prototype, 'source'),
          heatmapImageUrl: picture(v.prototype, 'heatmap'),
        })),
      })),
      timings: { preprocessMs: t1 - t0, inferenceMs: t2 - t1, explainMs: t3 - t2 },
    };
  }
}

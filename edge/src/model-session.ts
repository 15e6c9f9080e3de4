/**
 * The model: one onnxruntime-web session per isolate, created on first use from
 * the bundle's ONNX file (int8 when the bundle has it, else fp32) once it has
 * matched the manifest's size and sha256. Runs are queued: the wasm runtime is single
 * threaded, and interleaved runs would only share it worse.
 */
import { sha256Hex, type Manifest } from '@protoatlas/shared';
import type { AssetStore } from './assets.ts';
import { ApiError } from './errors.ts';
import { createOrtSession, ort } from './ort-runtime.ts';

export interface ModelOutputs {
  /** [m, H, W] squared distances, prototype-major (shared/explain.ts DistanceMaps). */
  distances: Float32Array;
  gridHeight: number;
  gridWidth: number;
}

export interface ModelFileInfo {
  precision: 'int8' | 'fp32';
  path: string;
  bytes: number;
  sha256: string;
}

/** The ONNX file the edge runs: int8 when present, else fp32; null when the bundle has no export. */
export function chooseModelFile(m: Manifest): ModelFileInfo | null {
  const onnx = m.files.onnx;
  if (!onnx) return null;
  if (onnx.int8) return { precision: 'int8', ...onnx.int8 };
  if (onnx.fp32) return { precision: 'fp32', ...onnx.fp32 };
  return null;
}

export interface VerifiedModel {
  file: ModelFileInfo;
  bytes: Uint8Array;
}

/** The model is absent from or does not match the bundle: permanent until the bundle is restaged. */
export class ModelIntegrityError extends ApiError {
  constructor(message: string) {
    super('model_unavailable', message);
  }
}

/**
 * The bundle's ONNX file, checked against the manifest's size and sha256 before
 * anything runs it. A mismatch (a corrupt or mixed bundle) is a ModelIntegrityError;
 * a failed fetch is an ordinary error, worth retrying.
 */
export async function loadModelFile(manifest: Manifest, assets: AssetStore): Promise<VerifiedModel> {
  const file = chooseModelFile(manifest);
  if (!file) {
    const how = 'run `npm run export --workspace trainer -- <run>` and restage it';
    throw new ModelIntegrityError(`this bundle has no ONNX export: ${how}`);
  }
  const res = await assets.fetch(file.path);
  if (res.status === 404) throw new ModelIntegrityError(`the model file ${file.path} is missing: restage the bundle`);
  if (!res.ok) throw new Error(`model file ${file.path} could not be read from the static assets (HTTP ${res.status})`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const fix =
    'the bundle is damaged or mixed; check it (`npm run bundle --workspace trainer -- --verify <bundle>`), restage it';
  const refuse = (found: string, listed: string) =>
    new ModelIntegrityError(`model file ${file.path} has ${found}, the manifest says ${listed}: ${fix}`);
  if (bytes.length !== file.bytes) throw refuse(`${bytes.length} bytes`, String(file.bytes));
  const digest = await sha256Hex(bytes);
  if (digest !== file.sha256) throw refuse(`sha256 ${digest}`, file.sha256);
  return { file, bytes };
}

export class ModelSession {
  readonly file: ModelFileInfo;
  readonly inputName: string;
  readonly size: number;
  private readonly session: ort.InferenceSession;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(file: ModelFileInfo, session: ort.InferenceSession, inputName: string, size: number) {
    this.file = file;
    this.session = session;
    this.inputName = inputName;
    this.size = size;
  }

  /** A session over model bytes already checked by loadModelFile. */
  static async create(manifest: Manifest, model: VerifiedModel, ortWasm: WebAssembly.Module): Promise<ModelSession> {
    const input = manifest.files.onnx!.inputs[0];
    if (input?.layout !== 'NHWC') throw new Error(`the ONNX input must be NHWC RGB (got ${JSON.stringify(input)})`);
    const session = await createOrtSession(ortWasm, model.bytes, { freeDimensionOverrides: { N: 1 } });
    return new ModelSession(model.file, session, input.name, manifest.preprocessing.size);
  }

  /**
   * One image (size x size x 3 floats, 0-255 RGB) through the graph.
   * `beforeRun` is called when the run's turn comes and may throw to skip it
   * (a request whose time budget ran out while queued).
   */
  run(input: Float32Array, beforeRun?: () => void): Promise<ModelOutputs> {
    const next = this.queue.then(() => {
      beforeRun?.();
      return this.runNow(input);
    });
    this.queue = next.catch(() => {});
    return next;
  }

  private async runNow(input: Float32Array): Promise<ModelOutputs> {
    const feeds = { [this.inputName]: new ort.Tensor('float32', input, [1, this.size, this.size, 3]) };
    // Distances are all explain() needs (it recomputes logits from them), so only they are fetched.
    const out = await this.session.run(feeds, ['distances']);
    try {
      const d = out.distances;
      // A CPU output's data is ort-web's own copy out of the wasm heap; dispose() only drops the
      // tensor's reference to it, so it is kept as it is.
      return {
        distances: d.data as Float32Array,
        gridHeight: d.dims[2],
        gridWidth: d.dims[3],
      };
    } finally {
      for (const t of Object.values(out)) t.dispose();
    }
  }
}

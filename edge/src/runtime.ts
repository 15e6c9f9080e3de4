/**
 * Per-isolate state, created on first use and then shared by every request:
 * the bundle manifest, the model session and the decoders. A failed start is
 * forgotten so the next request tries again, except a model that does not
 * match the manifest: that bundle is refused for the isolate's life.
 */
import type { AssetStore } from './assets.ts';
import { loadBundle, type LoadedBundle } from './bundle.ts';
import { ImageDecoder, type DecoderModules } from './decode.ts';
import { loadModelFile, ModelIntegrityError, ModelSession, type ModelFileInfo } from './model-session.ts';

export interface WasmModules extends DecoderModules {
  ort: WebAssembly.Module;
}

export class Runtime {
  private readonly assets: AssetStore;
  private readonly wasm: () => Promise<WasmModules>;
  private bundle: Promise<LoadedBundle> | null = null;
  private model: Promise<ModelSession> | null = null;
  private modelCheck: Promise<ModelFileInfo> | null = null;
  private decoder: Promise<ImageDecoder> | null = null;
  private decoderNow: ImageDecoder | null = null;

  constructor(assets: AssetStore, wasm: () => Promise<WasmModules>) {
    this.assets = assets;
    this.wasm = wasm;
  }

  /** A promise made once; a failure is forgotten (the next call retries) unless the bundle itself is bad. */
  private once<T>(
    get: () => Promise<T> | null,
    set: (p: Promise<T> | null) => void,
    make: () => Promise<T>,
  ): Promise<T> {
    let p = get();
    if (!p) {
      p = make();
      set(p);
      p.catch((e: unknown) => {
        if (!(e instanceof ModelIntegrityError)) set(null);
      });
    }
    return p;
  }

  getBundle(): Promise<LoadedBundle> {
    return this.once(
      () => this.bundle,
      (p) => (this.bundle = p),
      () => loadBundle(this.assets),
    );
  }

  getModel(): Promise<ModelSession> {
    return this.once(
      () => this.model,
      (p) => (this.model = p),
      async () => {
        const { manifest } = await this.getBundle();
        const verified = loadModelFile(manifest, this.assets);
        // A classification that comes first answers the health check too.
        const check = () => verified.then((v) => v.file);
        this.once(
          () => this.modelCheck,
          (p) => (this.modelCheck = p),
          check,
        ).catch(() => {});
        return ModelSession.create(manifest, await verified, (await this.wasm()).ort);
      },
    );
  }

  /**
   * The model file matched against the manifest (size and sha256), without
   * starting a session: what /healthz and start-up report. A mismatch stays
   * (the isolate never serves that bundle); a failed read is retried.
   */
  checkModel(): Promise<ModelFileInfo> {
    return this.once(
      () => this.modelCheck,
      (p) => (this.modelCheck = p),
      async () => (await loadModelFile((await this.getBundle()).manifest, this.assets)).file,
    );
  }

  getDecoder(): Promise<ImageDecoder> {
    return this.once(
      () => this.decoder,
      (p) => (this.decoder = p),
      async () => (this.decoderNow = new ImageDecoder(await this.wasm())),
    );
  }

  /** The JPEG decoder's largest wasm memory so far, for /healthz (null before the first JPEG). */
  jpegDecoderPeakBytes(): number | null {
    return this.decoderNow?.jpegPeakMemoryBytes ?? null;
  }

  /** The WebP decoder's largest wasm memory so far, for /healthz (null before the first WebP). */
  webpDecoderPeakBytes(): number | null {
    return this.decoderNow?.webpPeakMemoryBytes ?? null;
  }
}

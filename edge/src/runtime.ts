/**
 * Per-isolate state, created on first use and then shared by every request:
 * the bundle manifest, the model session and the decoders. A failed start is
 * forgotten so the next request tries again.
 */
import type { AssetStore } from './assets.ts';
import { loadBundle, type LoadedBundle } from './bundle.ts';
import { ImageDecoder, type DecoderModules } from './decode.ts';
import { ModelSession } from './model-session.ts';

export interface WasmModules extends DecoderModules {
  ort: WebAssembly.Module;
}

export class Runtime {
  private readonly assets: AssetStore;
  private readonly wasm: () => Promise<WasmModules>;
  private bundle: Promise<LoadedBundle> | null = null;
  private model: Promise<ModelSession> | null = null;
  private decoder: Promise<ImageDecoder> | null = null;

  constructor(assets: AssetStore, wasm: () => Promise<WasmModules>) {
    this.assets = assets;
    this.wasm = wasm;
  }

  private once<T>(get: () => Promise<T> | null, set: (p: Promise<T> | null) => void, make: () => Promise<T>): Promise<T> {
    let p = get();
    if (!p) {
      p = make();
      set(p);
      p.catch(() => set(null));
    }
    return p;
  }

  getBundle(): Promise<LoadedBundle> {
    return this.once(() => this.bundle, (p) => (this.bundle = p), () => loadBundle(this.assets));
  }

  getModel(): Promise<ModelSession> {
    return this.once(
      () => this.model,
      (p) => (this.model = p),
      async () => ModelSession.load((await this.getBundle()).manifest, this.assets, (await this.wasm()).ort),
    );
  }

  getDecoder(): Promise<ImageDecoder> {
    return this.once(() => this.decoder, (p) => (this.decoder = p), async () => new ImageDecoder(await this.wasm()));
  }
}

/**
 * Test backbone for the feature cache; also loadable in a worker thread
 * through its recipe (createFakeBackbone), so the pooled path can be tested.
 */
import type {
  BackboneRecipe,
  FeatureQuantization,
  FrozenBackbone,
  PreprocessSpec,
} from '../../trainer/src/backbone/types.ts';

export const SIZE = 8;
export const PRE: PreprocessSpec = { size: SIZE, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

export interface FakeOptions {
  hash?: string;
  quantization?: FeatureQuantization;
  /** Throw once more than this many images were seen (simulated crash). */
  failAfter?: number;
  /** Give the backbone a recipe, so that extraction runs on worker threads. */
  pooled?: boolean;
}

export function createFakeBackbone(o: FakeOptions): FakeBackbone {
  const bb = new FakeBackbone(o.hash, o.quantization);
  if (o.failAfter !== undefined) bb.failAfter = o.failAfter;
  if (o.pooled)
    bb.recipe = { module: import.meta.url, factory: 'createFakeBackbone', options: { ...o, pooled: false } };
  return bb;
}

/**
 * A deterministic stand-in backbone: 4x4 average pooling of the normalised image
 * (8x8x3 → 2x2x3), so features depend on every pixel and on the flip. Counts the
 * images it sees and can be told to fail, to simulate a crash mid-extraction.
 */
export class FakeBackbone implements FrozenBackbone {
  readonly hash: string;
  readonly description = 'fake 4x4 pool';
  readonly preprocess = PRE;
  readonly featureShape: [number, number, number] = [2, 2, 3];
  readonly quantization?: FeatureQuantization;
  seen = 0;
  recipe?: BackboneRecipe;
  failAfter = Infinity;

  constructor(hash = 'fake-v1', quantization?: FeatureQuantization) {
    this.hash = hash;
    this.quantization = quantization;
    if (quantization)
      this.extractQuantized = async (batch: Float32Array, n: number) => this.quantize(await this.extract(batch, n));
  }

  extractQuantized?: (batch: Float32Array, n: number) => Promise<Uint8Array>;

  async extract(batch: Float32Array, n: number): Promise<Float32Array> {
    if (this.seen + n > this.failAfter) throw new Error('simulated crash');
    this.seen += n;
    const out = new Float32Array(n * 12);
    for (let i = 0; i < n; i++)
      for (let y = 0; y < SIZE; y++)
        for (let x = 0; x < SIZE; x++)
          for (let c = 0; c < 3; c++)
            out[i * 12 + ((y >> 2) * 2 + (x >> 2)) * 3 + c] += batch[((i * SIZE + y) * SIZE + x) * 3 + c] / 16;
    return out;
  }

  private quantize(f: Float32Array): Uint8Array {
    const q = this.quantization!;
    return Uint8Array.from(f, (v) => Math.min(255, Math.max(0, Math.round(v / q.scale + q.zeroPoint))));
  }

  async dispose(): Promise<void> {}
}

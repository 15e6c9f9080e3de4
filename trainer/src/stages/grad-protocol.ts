/**
 * The messages between the gradient pool (grad-pool.ts, main thread) and its
 * workers (grad-worker.ts): both sides import this module, so neither imports
 * the other.
 */
import type { BackboneRecipe } from '../backbone/types.ts';
import type { HostTensors } from '../core/host-tensors.ts';
import type { PhaseConfig } from '../config/config.ts';
import type { TrainedHeadSpec } from '../head/trained-head.ts';
import type { LossWeights } from '../head/losses.ts';
import type { BackendPreference } from '../tf/backend.ts';
import type { MicroBatch } from './grad-step.ts';
import type { ExcludedPatch, PatchHit, PushBest } from './search-results.ts';
import type { SharedFeatureSource, SharedImageSource } from './sources.ts';

export interface GradWorkerInit {
  /** The trainable backbone's recipe; null when the head trains on cached features. */
  backbone: BackboneRecipe | null;
  headSpec: TrainedHeadSpec;
  /** Image sources by name ('train' trains; others are only read by feature requests). */
  sources: Record<string, SharedImageSource>;
  /** Cached-feature sources by name (frozen backbones). */
  featureSources: Record<string, SharedFeatureSource>;
  backend: BackendPreference;
}

export type GradWorkerRequest =
  | { type: 'ping'; id: number }
  /** Finish the requests before it, then exit (no reply). */
  | { type: 'close'; id: number }
  | {
      type: 'phase';
      id: number;
      phase: PhaseConfig;
      loss: LossWeights;
      backboneTraining: boolean;
      names: string[];
      weights: HostTensors;
      tied: Float32Array | null;
    }
  | { type: 'vars'; id: number; values: Float32Array[] }
  | { type: 'grads'; id: number; batches: MicroBatch[] }
  | { type: 'backbone'; id: number; weights: HostTensors }
  | { type: 'features'; id: number; source: string; indices: number[]; flipped: boolean[] }
  /** The head to evaluate with: its weights and tied patches (evaluation outside a phase's steps). */
  | { type: 'head'; id: number; weights: HostTensors; tied: Float32Array | null }
  | { type: 'similarities'; id: number; source: string; indices: number[]; flipped: boolean[] }
  | { type: 'pooled'; id: number; source: string; indices: number[]; flipped: boolean[]; seeds?: number[] }
  /** Push over some chunks of a source: the worker's share (push.ts), with 'progress' replies per chunk. */
  | { type: 'push'; id: number; source: string; chunks: number[][]; exclude: Map<number, Set<number>> | null }
  /** The nearest-patch search over some chunks (nearest-patches.ts), with 'progress' replies per chunk. */
  | {
      type: 'nearest';
      id: number;
      source: string;
      chunks: number[][];
      k: number;
      exclude: (ExcludedPatch | null)[] | null;
    };

export type GradWorkerReply =
  | { type: 'ok'; id: number }
  | {
      type: 'grads';
      id: number;
      results: {
        value: number;
        terms: [number, number, number, number];
        alignment?: number;
        localisation?: { cost: number; pairs: number; hits: number };
        grads: Float32Array[];
      }[];
    }
  | { type: 'features'; id: number; data: Float32Array }
  | { type: 'similarities'; id: number; data: Float32Array }
  | { type: 'pooled'; id: number; data: Float32Array }
  | { type: 'push'; id: number; best: PushBest }
  | { type: 'nearest'; id: number; hits: PatchHit[][] }
  /** Items done so far by a long request (not its answer). */
  | { type: 'progress'; id: number; items: number }
  | { type: 'error'; id: number; message: string };

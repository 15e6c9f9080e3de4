/**
 * The heads the gradient threads can train: the prototype head, and the pooled linear head of the
 * black-box baseline. A worker builds whichever its spec names.
 */
import { type HeadSpec, ProtoHead } from './proto-head.ts';
import { PooledLinearHead, type PooledLinearSpec } from './pooled-linear-head.ts';
import type { Rng } from '../core/rng.ts';

export type TrainedHead = ProtoHead | PooledLinearHead;
export type TrainedHeadSpec = HeadSpec | PooledLinearSpec;

export function isPooledLinearSpec(spec: TrainedHeadSpec): spec is PooledLinearSpec {
  return (spec as PooledLinearSpec).kind === 'pooled-linear';
}

export function buildHead(spec: TrainedHeadSpec, rng: Rng): TrainedHead {
  return isPooledLinearSpec(spec) ? new PooledLinearHead(spec, rng) : new ProtoHead(spec, rng);
}

/** The head as a prototype head, for work only prototypes do (push, similarities, nearest patches). */
export function prototypeHead(head: TrainedHead, what: string): ProtoHead {
  if (head instanceof ProtoHead) return head;
  throw new Error(`${what} needs a prototype head; this worker trains the black-box baseline's pooled linear head`);
}

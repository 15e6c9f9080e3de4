/**
 * Worker-thread side of grad-pool.ts: a copy of the backbone and head that
 * computes the micro-batches it is sent, with the same code as the main
 * thread (grad-step.ts), and takes the trained variables' new values after
 * every step.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { buildFromRecipe } from '../backbone/recipe.ts';
import type { TrainableBackbone } from '../backbone/types.ts';
import { buildHead, prototypeHead, type TrainedHead } from '../head/trained-head.ts';
import { ProtoHead } from '../head/proto-head.ts';
import { Rng } from '../core/rng.ts';
import { initBackend } from '../tf/backend.ts';
import { disposeGradContext, gradContext, microBatchGrads, type GradContext } from './grad-step.ts';
import { phaseGroups } from './prototype-phase.ts';
import { headSimilarities } from './predict.ts';
import { pooledChunk } from './linear-probe.ts';
import { NearestSearch } from './nearest-patches.ts';
import { emptyPushBest, pushChunk } from './push.ts';
import { sharedFeatureSource, sharedImageSource, throughBackbone, type FeatureSource } from './sources.ts';
import type { GradWorkerInit, GradWorkerReply, GradWorkerRequest } from './grad-protocol.ts';

const port = parentPort;
if (!port) throw new Error('grad-worker.ts runs only as a worker thread');
const init = workerData as GradWorkerInit;

// Messages are handled one at a time, in order, after start-up.
interface Model {
  backbone: TrainableBackbone | null;
  head: TrainedHead;
  sources: Map<string, FeatureSource>;
}
let ready: Promise<Model> = (async () => {
  await initBackend(init.backend, { quiet: true });
  const backbone = init.backbone ? await buildFromRecipe<TrainableBackbone>(init.backbone) : null;
  const head = buildHead(init.headSpec, new Rng(0)); // weights arrive with the phase
  const sources = new Map<string, FeatureSource>();
  for (const [name, shared] of Object.entries(init.featureSources)) {
    if (shared.throughBackbone && !backbone)
      throw new Error(`feature source "${name}" feeds a backbone top that was not sent`);
    const cached = sharedFeatureSource(shared);
    sources.set(name, shared.throughBackbone && backbone ? throughBackbone(cached, backbone) : cached);
  }
  for (const [name, shared] of Object.entries(init.sources)) {
    if (!backbone) throw new Error(`image source "${name}" sent without a backbone to run on it`);
    sources.set(name, sharedImageSource(shared, backbone));
  }
  return { backbone, head, sources };
})();
// A start-up failure is reported in answer to the first request (below), not as a crash.
ready.catch(() => undefined);
let ctx: GradContext | null = null;

port.on('message', (msg: GradWorkerRequest) => {
  if (msg.type === 'close') {
    // Exiting by running out of work, rather than being terminated inside wasm, is the safe way out.
    ready.then(
      () => port.close(),
      () => port.close(),
    );
    return;
  }
  ready = ready.then(async (model) => {
    try {
      const reply = handle(msg, model);
      if (reply) port.postMessage(reply, transferables(reply));
    } catch (e) {
      port.postMessage({
        type: 'error',
        id: msg.id,
        message: e instanceof Error ? (e.stack ?? e.message) : String(e),
      } satisfies GradWorkerReply);
    }
    return model;
  });
  // A failed start-up answers every request with its error.
  ready.catch((e: unknown) =>
    port.postMessage({
      type: 'error',
      id: msg.id,
      message: `start-up failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
    } satisfies GradWorkerReply),
  );
});

function progress(id: number, items: number): void {
  port!.postMessage({ type: 'progress', id, items } satisfies GradWorkerReply);
}

function transferables(reply: GradWorkerReply): ArrayBuffer[] {
  if (reply.type === 'grads') return reply.results.flatMap((r) => r.grads.map((g) => g.buffer as ArrayBuffer));
  if (reply.type === 'features' || reply.type === 'similarities' || reply.type === 'pooled')
    return [reply.data.buffer as ArrayBuffer];
  return [];
}

function handle(
  msg: Exclude<GradWorkerRequest, { type: 'close' }>,
  { backbone, head, sources }: Model,
): GradWorkerReply | null {
  const source = (name: string): FeatureSource => {
    const s = sources.get(name);
    if (!s) throw new Error(`no image source "${name}" in this worker (has ${[...sources.keys()].join(', ')})`);
    return s;
  };
  switch (msg.type) {
    case 'ping':
      return { type: 'ok', id: msg.id };
    case 'phase': {
      head.setWeights(msg.weights);
      const bb = new Map(
        [...msg.weights].filter(([k]) => k.startsWith('backbone.')).map(([k, v]) => [k.slice('backbone.'.length), v]),
      );
      backbone?.setWeights(bb);
      if (msg.tied) prototypeHead(head, 'tied prototypes').tieToPatches(msg.tied);
      else if (head instanceof ProtoHead) head.untie();
      if (ctx) disposeGradContext(ctx);
      const groups = phaseGroups(msg.phase, head, backbone);
      const names = groups.flatMap((g) => g.vars.map(([n]) => n));
      if (names.join('\n') !== msg.names.join('\n'))
        throw new Error(
          `trained variables differ from the main thread's (${names.length} here, ${msg.names.length} there)`,
        );
      ctx = gradContext({
        head,
        source: source('train'),
        loss: msg.loss,
        vars: groups.flatMap((g) => g.vars.map(([, v]) => v)),
        trainsFeatures: groups.some((g) => g.name === 'features'),
        backboneTraining: msg.backboneTraining,
      });
      return { type: 'ok', id: msg.id };
    }
    case 'vars': {
      if (!ctx) throw new Error('variables sent before a phase began');
      const c = ctx;
      if (msg.values.length !== c.vars.length)
        throw new Error(`got ${msg.values.length} variable values for ${c.vars.length} variables`);
      msg.values.forEach((data, i) => tf.tidy(() => c.vars[i].assign(tf.tensor(data, c.vars[i].shape))));
      return null;
    }
    case 'grads': {
      if (!ctx) throw new Error('gradients asked for before a phase began');
      const c = ctx;
      const results = msg.batches.map((mb) => {
        const r = microBatchGrads(c, mb);
        const grads = r.grads.map((g) => g.dataSync().slice() as Float32Array);
        tf.dispose(r.grads);
        return { value: r.value, terms: r.terms, alignment: r.alignment, localisation: r.localisation, grads };
      });
      return { type: 'grads', id: msg.id, results };
    }
    case 'backbone':
      if (!backbone) throw new Error('backbone weights sent to a worker that trains on cached features');
      backbone.setWeights(msg.weights);
      return { type: 'ok', id: msg.id };
    case 'features': {
      const t = tf.tidy(() => source(msg.source).features(msg.indices, msg.flipped, false));
      const data = t.dataSync().slice() as Float32Array;
      t.dispose();
      return { type: 'features', id: msg.id, data };
    }
    case 'head': {
      const proto = prototypeHead(head, 'evaluating prototypes');
      proto.setWeights(msg.weights);
      if (msg.tied) proto.tieToPatches(msg.tied);
      else proto.untie();
      return { type: 'ok', id: msg.id };
    }
    case 'similarities':
      return {
        type: 'similarities',
        id: msg.id,
        data: headSimilarities(prototypeHead(head, 'similarities'), source(msg.source), msg.indices, msg.flipped),
      };
    case 'pooled':
      return { type: 'pooled', id: msg.id, data: pooledChunk(source(msg.source), msg.indices, msg.flipped, msg.seeds) };
    case 'push': {
      const src = source(msg.source);
      const proto = prototypeHead(head, 'push');
      const best = emptyPushBest(proto.numPrototypes, proto.prototypeDim);
      for (const idx of msg.chunks) {
        pushChunk(proto, src, idx, best, msg.exclude);
        progress(msg.id, idx.length);
      }
      return { type: 'push', id: msg.id, best };
    }
    case 'nearest': {
      const src = source(msg.source);
      const proto = prototypeHead(head, 'the nearest-patch search');
      const search = new NearestSearch(proto.numPrototypes, msg.k, msg.exclude);
      for (const idx of msg.chunks) {
        search.add(proto, src, idx);
        progress(msg.id, idx.length);
      }
      return { type: 'nearest', id: msg.id, hits: search.hits };
    }
  }
}

/**
 * Last layer (paper Sec. 2.2, stage 3): the last layer alone, on similarities computed once,
 * optionally keeping the epoch that scores best on validation.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  computeSimilarities,
  lastLayerOptimizer,
  lastLayerSparsity,
  recenterRows,
  similarityAccuracy,
  trainLastLayerEpoch,
  wrongClassMaskTensor,
} from '../../stages/last-layer.ts';
import { storeRunSimilarities } from '../../stages/similarity-cache.ts';
import { runEpochs } from '../epoch-runner.ts';
import type { TrainingPhase } from '../training-phase.ts';

/** Checkpoint tensor holding the best epoch's last layer so far. */
const BEST = 'best.last_layer';

export const lastLayerPhase: TrainingPhase = {
  name: 'lastLayer',
  summaryLabel: 'after last layer',
  async run(ctx) {
    const { head, meta, config } = ctx;
    const t0 = Date.now();
    const settings = config.lastLayer;
    const mask = wrongClassMaskTensor(head);
    const optimizer = lastLayerOptimizer(head, settings, mask);
    const left = settings.epochs > meta.epoch;
    const sims = left
      ? await computeSimilarities(head, ctx.train, {
          flip: config.data.flip,
          quiet: ctx.control.quiet,
          pool: await ctx.readThreads(),
        })
      : null;
    const valSims = left
      ? await computeSimilarities(head, ctx.val, { flip: false, quiet: true, pool: await ctx.readThreads() })
      : null;
    // Kept for edits that leave the embedding alone (drop, relabel: trainer/src/edit/).
    if (sims && valSims) await storeRunSimilarities(head, config, ctx.data, { train: sims, val: valSims });
    const keepBest = () => {
      const data = head.lastLayer.dataSync().slice() as Float32Array;
      ctx.phaseTensors.set(BEST, { shape: head.lastLayer.shape.slice(), data });
    };
    // Keep the last-layer weights that do best on validation (epoch 0 = as they came out of push):
    // on frozen features this stage can overfit the training similarities.
    if (meta.epoch === 0) {
      // The same classifier with its wrong-class weights at 0 (softmax ignores a per-row shift).
      if (settings.l1Solver === 'proximal') recenterRows(head);
      meta.bestLastLayer = { epoch: 0, top1: valSims?.n ? similarityAccuracy(head, valSims)!.top1 : NaN };
      keepBest();
    } else {
      const resumed = ctx.resumedTensor(BEST);
      if (resumed) ctx.phaseTensors.set(BEST, resumed);
    }
    const ended = await runEpochs(ctx, {
      epochs: settings.epochs,
      optimizer,
      async runEpoch(e) {
        const t = Date.now();
        const stats = trainLastLayerEpoch({
          head,
          data: sims!,
          batchSize: settings.batchSize,
          l1: settings.l1,
          optimizer,
          rng: ctx.rng,
        });
        const v = similarityAccuracy(head, valSims!);
        const zero = lastLayerSparsity(head, 0);
        const row = {
          ...stats,
          wrongClassNearZero: lastLayerSparsity(head),
          wrongClassZero: zero,
          valTop1: v?.top1 ?? null,
          valTop5: v?.top5 ?? null,
          seconds: (Date.now() - t) / 1000,
        };
        const best = meta.bestLastLayer;
        if (settings.selectBest && v && best && v.top1 > best.top1) {
          meta.bestLastLayer = { epoch: e + 1, top1: v.top1 };
          keepBest();
        }
        const every = e === settings.epochs - 1 || (e + 1) % 5 === 0;
        return {
          row,
          log: every
            ? `last layer epoch ${e + 1}/${settings.epochs}: loss ${stats.loss.toFixed(3)} ` +
              `train ${(100 * stats.trainAccuracy).toFixed(1)}% val ${v ? `${(100 * v.top1).toFixed(1)}%` : 'n/a'} ` +
              `wrong-class weights exactly 0: ${(100 * zero).toFixed(1)}%`
            : undefined,
        };
      },
    });
    if (ended === 'stopped') return 'stopped';
    const best = ctx.phaseTensors.get(BEST);
    if (settings.selectBest && best) {
      const kept = meta.bestLastLayer;
      head.lastLayer.assign(tf.tensor2d(best.data, head.lastLayer.shape as [number, number]));
      ctx.log(
        `last layer: keeping epoch ${kept?.epoch} (best validation top-1 ${(100 * (kept?.top1 ?? NaN)).toFixed(1)}%)`,
      );
    }
    const val = await ctx.evalVal();
    meta.seconds.lastLayer = (meta.seconds.lastLayer ?? 0) + (Date.now() - t0) / 1000;
    optimizer.dispose();
    mask.dispose();
    return { seconds: meta.seconds.lastLayer, val };
  },
};

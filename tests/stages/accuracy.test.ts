/**
 * Top-1 and top-5 (trainer/src/stages/predict.ts) rank tied scores as argmax does, first index first:
 * a model whose logits are all equal predicts class 0 for every image, and is not right everywhere.
 */
import { describe, expect, it } from 'vitest';
import { accuracy } from '../../trainer/src/stages/predict.ts';

describe('accuracy', () => {
  it('counts a tie for the top score as right only for the first tied class', () => {
    // 4 images of classes 0..3, every logit 0.
    const a = accuracy({ n: 4, numClasses: 4, logits: new Float32Array(16), labels: Int32Array.from([0, 1, 2, 3]) });
    expect(a.top1).toBe(0.25);
    expect(a.perClass).toEqual([1, 0, 0, 0]);
    expect(a.top5).toBe(1); // 4 classes: all within 5
  });

  it('ranks a label tied with earlier classes behind them for top-5', () => {
    // 7 classes; the label (6) ties with classes 0..5 at 1: five come first, so it is 6th.
    const logits = Float32Array.from([1, 1, 1, 1, 1, 1, 1]);
    expect(accuracy({ n: 1, numClasses: 7, logits, labels: Int32Array.from([6]) }).top5).toBe(0);
    expect(accuracy({ n: 1, numClasses: 7, logits, labels: Int32Array.from([4]) }).top5).toBe(1);
  });

  it('scores strict orders as before', () => {
    const logits = Float32Array.from([0.1, 0.9, 0.0, 0.5, 0.2, 0.3]);
    const a = accuracy({ n: 2, numClasses: 3, logits, labels: Int32Array.from([1, 0]) });
    expect(a.top1).toBe(1);
  });
});

/**
 * Two classifiers scored on the same images: the difference of their top-1 accuracies with a 95%
 * interval from the per-image differences. Pairing removes the images both get right or both get
 * wrong from the noise, so it separates two models that independent intervals cannot.
 */
export interface PairedDifference {
  n: number;
  /** top-1 of A minus top-1 of B. */
  difference: number;
  /** 95% interval of the difference (normal approximation over per-image differences). */
  interval95: [number, number];
  /** Images only A gets right, and only B. */
  onlyA: number;
  onlyB: number;
}

export function pairedDifference(correctA: ArrayLike<boolean>, correctB: ArrayLike<boolean>): PairedDifference {
  const n = correctA.length;
  if (n !== correctB.length) throw new Error(`paired scores need the same images: ${n} against ${correctB.length}`);
  if (n < 2) throw new Error(`paired scores need at least 2 images, got ${n}`);
  let onlyA = 0;
  let onlyB = 0;
  for (let i = 0; i < n; i++) {
    if (correctA[i] && !correctB[i]) onlyA++;
    if (correctB[i] && !correctA[i]) onlyB++;
  }
  // Per-image differences are +1 (onlyA), -1 (onlyB) or 0; their sample variance gives the mean's error.
  const mean = (onlyA - onlyB) / n;
  const variance = (onlyA + onlyB - n * mean * mean) / (n - 1);
  const half = 1.96 * Math.sqrt(variance / n);
  return { n, difference: mean, interval95: [mean - half, mean + half], onlyA, onlyB };
}

/** Which items a classifier gets right: argmax of each row of [n, C] logits against the labels. */
export function correctTop1(logits: Float32Array, labels: Int32Array, numClasses: number): boolean[] {
  return Array.from(labels, (label, i) => {
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (logits[i * numClasses + c] > logits[i * numClasses + best]) best = c;
    return best === label;
  });
}

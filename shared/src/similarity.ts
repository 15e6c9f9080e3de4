/**
 * ProtoPNet's similarity: log((d + 1) / (d + eps)). Large when the squared
 * distance d is small, ~0 when it is large; eps bounds it at d = 0.
 */
export const SIMILARITY_EPSILON = 1e-4;

export function logSimilarity(distance: number, eps = SIMILARITY_EPSILON): number {
  const d = Math.max(distance, 0);
  return Math.log((d + 1) / (d + eps));
}

/** Inverse of logSimilarity, for turning a similarity back into a distance. */
export function distanceFromSimilarity(similarity: number, eps = SIMILARITY_EPSILON): number {
  const e = Math.exp(similarity);
  return (1 - eps * e) / (e - 1);
}

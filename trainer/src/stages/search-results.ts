/**
 * What push and the nearest-patch search find, as plain data: the results one gradient thread
 * sends back (grad-protocol.ts) and the searches (push.ts, nearest-patches.ts) merge.
 */

/** One image's closest patch to a prototype, with the prototype's whole distance map on that image. */
export interface PatchHit {
  /** Index of the item in the source. */
  item: number;
  /** Patch index on the feature grid (row * W + col). */
  patch: number;
  distance: number;
  /** Squared distances of every patch of this image to the prototype (H*W), for boxes and heatmaps. */
  map: Float32Array;
}

/** A patch not to count, e.g. the prototype's own source patch; patch -1 leaves out the whole image. */
export interface ExcludedPatch {
  item: number;
  patch: number;
}

/** The nearest own-class patch found so far for every prototype: one thread's share of push. */
export interface PushBest {
  distance: Float64Array;
  item: Int32Array;
  /** Patch index on the grid (row * W + col). */
  patch: Int32Array;
  /** The patch's embedding [m * P]. */
  vec: Float32Array;
}

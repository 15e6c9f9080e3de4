import { hostTensor, type HostTensor } from '../core/host-tensors.ts';

/** prototypeClass[j] = class that prototype j belongs to (classes * perClass prototypes, class-major). */
export function prototypeClasses(numClasses: number, perClass: number): Int32Array {
  const out = new Int32Array(numClasses * perClass);
  for (let j = 0; j < out.length; j++) out[j] = Math.floor(j / perClass);
  return out;
}

/**
 * One-hot identity [m, C]: 1 where prototype j belongs to class c. The paper's
 * class-connection matrix; the last layer, masks and Clst/Sep all derive from it.
 */
export function classIdentity(protoClass: Int32Array, numClasses: number): HostTensor {
  const m = protoClass.length;
  const t = hostTensor([m, numClasses]);
  for (let j = 0; j < m; j++) t.data[j * numClasses + protoClass[j]] = 1;
  return t;
}

/**
 * Each class's prototype indices, class by class: [C * K] with K prototypes per class. Throws when
 * the classes hold different numbers of prototypes (an edited model), naming `what` needs them.
 */
export function classGroups(
  protoClass: Int32Array,
  numClasses: number,
  what: string,
): { indices: Int32Array; perClass: number } {
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  protoClass.forEach((c, j) => byClass[c].push(j));
  const perClass = byClass[0]?.length ?? 0;
  const uneven = byClass.findIndex((g) => g.length !== perClass);
  if (uneven >= 0 || perClass === 0)
    throw new Error(
      `${what} needs the same number of prototypes in every class: class 0 has ${perClass}` +
        (uneven >= 0 ? `, class ${uneven} has ${byClass[uneven].length}` : ''),
    );
  return { indices: Int32Array.from(byClass.flat()), perClass };
}

/**
 * Last layer weights stored [m, C] (logits = similarities @ W): +1 to the own
 * class and `incorrect` (paper: -0.5) to every other class.
 */
export function initLastLayer(protoClass: Int32Array, numClasses: number, correct = 1, incorrect = -0.5): HostTensor {
  const m = protoClass.length;
  const t = hostTensor([m, numClasses]);
  for (let j = 0; j < m; j++) {
    for (let c = 0; c < numClasses; c++) t.data[j * numClasses + c] = c === protoClass[j] ? correct : incorrect;
  }
  return t;
}

/** Mask of the wrong-class connections that stage 3 pushes to zero with L1. */
export function wrongClassMask(protoClass: Int32Array, numClasses: number): HostTensor {
  const id = classIdentity(protoClass, numClasses);
  const data = id.data.map((v) => 1 - v);
  return hostTensor(id.shape, data);
}

/** Share of wrong-class weights whose magnitude is below `tol`, or exactly 0 when tol is 0 (stage 3's sparsity report). */
export function wrongClassSparsity(weights: HostTensor, protoClass: Int32Array, tol = 1e-3): number {
  const C = weights.shape[1];
  let near = 0;
  let total = 0;
  for (let j = 0; j < protoClass.length; j++) {
    for (let c = 0; c < C; c++) {
      if (c === protoClass[j]) continue;
      total++;
      const w = Math.abs(weights.data[j * C + c]);
      if (tol === 0 ? w === 0 : w < tol) near++;
    }
  }
  return total === 0 ? 1 : near / total;
}

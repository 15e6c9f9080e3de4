/** A named host-side tensor: what checkpoints and bundles store. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export type HostTensors = Map<string, HostTensor>;

export function hostTensor(shape: number[], data?: Float32Array): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (data && data.length !== n)
    throw new Error(`tensor data has ${data.length} values, shape ${JSON.stringify(shape)} needs ${n}`);
  return { shape, data: data ?? new Float32Array(n) };
}

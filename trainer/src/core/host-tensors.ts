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

/** Split a checkpoint's or model file's tensors by prefix ("head.", "backbone.", "adam."). */
export function pickTensors(tensors: HostTensors, prefix: string, strip = false): HostTensors {
  const out: HostTensors = new Map();
  for (const [k, v] of tensors) if (k.startsWith(prefix)) out.set(strip ? k.slice(prefix.length) : k, v);
  return out;
}

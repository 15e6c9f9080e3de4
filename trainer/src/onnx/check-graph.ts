/**
 * Structural checks of an ONNX model that need no runtime: topological order,
 * single assignment, produced outputs, declared opsets. onnxruntime would
 * reject most of these too, but with less readable messages.
 */
import { decodeModel, opsetImports, type OnnxModel } from './onnx-proto.ts';

export interface GraphCheck {
  /** ai.onnx opset the model imports (0 when missing). */
  opset: number;
  problems: string[];
}

export function checkModel(modelOrBytes: OnnxModel | Uint8Array): GraphCheck {
  const model = modelOrBytes instanceof Uint8Array ? decodeModel(modelOrBytes) : modelOrBytes;
  const g = model.graph;
  const opsets = opsetImports(model);
  const problems: string[] = [];
  const opset = opsets.get('') ?? opsets.get('ai.onnx') ?? 0;
  if (!opset) problems.push('no ai.onnx opset import');

  const available = new Set<string>();
  const define = (name: string, what: string): void => {
    if (available.has(name)) problems.push(`tensor "${name}" is defined twice (again by ${what})`);
    available.add(name);
  };
  for (const t of g.initializers) define(t.name, `initializer`);
  // Old IR versions list initializers among the inputs too: those are not redefinitions.
  const initNames = new Set(g.initializers.map((t) => t.name));
  for (const i of g.inputs) if (!initNames.has(i.name)) define(i.name, 'graph input');

  g.nodes.forEach((n, k) => {
    const label = `node ${k} (${n.opType}${n.name ? ` "${n.name}"` : ''})`;
    for (const t of n.inputs)
      if (t !== '' && !available.has(t)) problems.push(`${label} reads "${t}" before anything produces it`);
    for (const t of n.outputs) if (t !== '') define(t, label);
    const domain = n.domain === 'ai.onnx' ? '' : n.domain;
    if (!opsets.has(domain)) problems.push(`${label} uses domain "${n.domain}" that the model does not import`);
  });
  for (const o of g.outputs) if (!available.has(o.name)) problems.push(`graph output "${o.name}" is never produced`);
  return { opset, problems };
}

/** Throws with every problem listed, for use right after building a model. */
export function assertValidModel(model: OnnxModel | Uint8Array): number {
  const { opset, problems } = checkModel(model);
  if (problems.length)
    throw new Error(`ONNX export produced an invalid graph:\n  ${problems.slice(0, 10).join('\n  ')}`);
  return opset;
}

/**
 * The edits a config makes to a published ONNX backbone before anything reads it:
 * a finer output stride by dilation and a fixed input blur. Every reader (feature
 * extraction, export, receptive fields, import for training) applies them through
 * here, so they all see the same network.
 */
import type { OnnxGraph } from '../onnx/onnx-proto.ts';
import { insertInputBlur } from './input-blur.ts';
import { setOutputStride, type OutputStride } from './output-stride.ts';

export interface BackboneGraphEdits {
  outputStride?: OutputStride;
  /** Sigma of the Gaussian input blur, in input pixels; absent or 0: none. */
  inputBlur?: number;
}

export function applyGraphEdits(graph: OnnxGraph, edits: BackboneGraphEdits): OnnxGraph {
  const strided = edits.outputStride ? setOutputStride(graph, edits.outputStride) : graph;
  return edits.inputBlur ? insertInputBlur(strided, edits.inputBlur) : strided;
}

/** What the edits add to a backbone's identity (feature cache keys, descriptions); '' without edits. */
export function graphEditsKey(edits: BackboneGraphEdits): string {
  return (
    (edits.outputStride ? `\0outputStride=${edits.outputStride}` : '') +
    (edits.inputBlur ? `\0inputBlur=${edits.inputBlur}` : '')
  );
}

export function describeGraphEdits(edits: BackboneGraphEdits): string {
  return (
    (edits.outputStride ? ` output stride ${edits.outputStride}` : '') +
    (edits.inputBlur ? ` input blur sigma ${edits.inputBlur}` : '')
  );
}

import type { HostTensors } from '../core/host-tensors.ts';
import { loadTensorFile, saveTensorFile } from '../core/tensor-file.ts';
import type { PushRecord } from '../stages/push.ts';
import type { PruningResult } from '../stages/prune-stage.ts';
import type { ResumableMeta } from './run-state.ts';

/** `stage` of a finished run; otherwise `stage` names the schedule's next phase (run/training-schedule.ts). */
export const FINISHED = 'done';

export interface StageResult {
  top1: number;
  top5: number;
  seconds: number;
}

/** Everything needed to continue a run exactly where it stopped. */
export interface CheckpointMeta extends ResumableMeta {
  version: 1;
  /** The phase to run next (the one under way when `epoch` > 0 or `epochProgress` is set), or FINISHED. */
  stage: string;
  push: PushRecord[] | null;
  /** The real patch each prototype was initialised at (head.prototypeInit 'patches'; absent in older runs). */
  initPatches?: PushRecord[] | null;
  /** Per phase (and 'init'), in the order they ran. */
  stageResults: Partial<Record<string, StageResult>>;
  /** The same-backbone baseline (frozen backbones only). */
  baseline?: { top1: number; top5: number } | null;
  /** Best last-layer epoch on validation so far (0 = as pushed). */
  bestLastLayer?: { epoch: number; top1: number };
  /** What the prune stage decided (absent before it ran). */
  pruning?: PruningResult | null;
}

export async function saveCheckpoint(path: string, meta: CheckpointMeta, tensors: HostTensors): Promise<void> {
  await saveTensorFile(path, meta, tensors);
}

export async function loadCheckpoint(path: string): Promise<{ meta: CheckpointMeta; tensors: HostTensors }> {
  const file = await loadTensorFile<CheckpointMeta>(path);
  if (!file.meta) {
    throw new Error(`${path}: no ProtoAtlas checkpoint metadata (__metadata__.protoatlas); train did not write it`);
  }
  if (file.meta.version !== 1) throw new Error(`${path}: checkpoint version ${file.meta.version} is not supported`);
  return file;
}

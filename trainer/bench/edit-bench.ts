/**
 * What the benches that edit a finished CUB run share: the run's config, its dataset split as it trained and its
 * bundle's manifest; the edits file written beside the output run; the parent's and the edited model's figures.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { EditsFile, Manifest } from '@protoatlas/shared';
import { readBundle } from '../src/bundle/read-bundle.ts';
import type { TrainConfig } from '../src/config/config.ts';
import { referenceDataDir } from '../src/core/data-path.ts';
import { exists, runPaths } from '../src/core/run-dir.ts';
import type { EditReport } from '../src/edit/apply-edits.ts';
import { formatEditReport } from '../src/edit/format-edit-report.ts';
import type { Dataset } from '../src/data/types.ts';
import { readModelJson } from '../src/model/model-file.ts';
import { loadRunDataset } from '../src/model/prepare-data.ts';

export interface RunToEdit {
  run: string;
  out: string;
  data: string;
  config: TrainConfig;
  splits: Dataset['splits'];
  parent: Manifest;
}

/** The run and its data, or null (after saying so) when the CUB folder is not on this machine. */
export async function openRunToEdit(runDir: string, outDir: string, dataDir?: string): Promise<RunToEdit | null> {
  const data = resolve(dataDir ?? join(referenceDataDir(), 'cub200'));
  if (!(await exists(data))) {
    console.log(`skipped: ${data} not found (pass --data or set PROTOPNET_DATA to the folder holding cub200/)`);
    return null;
  }
  const run = resolve(runDir);
  const { config } = await readModelJson(run);
  const { splits } = await loadRunDataset(config, data);
  const parent = (await readBundle(runPaths(run).bundle)).manifest;
  return { run, out: resolve(outDir), data, config, splits, parent };
}

/** Writes `edits` for the parent as `<out>.edits.json` and returns that path. */
export async function writeEditsFile(out: string, parent: Manifest, edits: EditsFile['edits']): Promise<string> {
  const file: EditsFile = {
    schema: 'protoatlas-edits',
    version: 1,
    model: { id: parent.model.id, version: parent.model.version },
    edits,
  };
  await mkdir(dirname(out), { recursive: true });
  const path = `${out}.edits.json`;
  await writeFile(path, JSON.stringify(file));
  return path;
}

/** The edit CLI's before/after table, then where the edited run and its edits file are. */
export function printEditReport(report: EditReport, editsPath: string): void {
  console.log(formatEditReport(report));
  console.log(`edits file ${editsPath}`);
}

import { access, appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.ts';

/** Paths inside a run directory; the layout is part of the interface (evaluate/explain read it). */
export function runPaths(dir: string) {
  return {
    dir,
    config: join(dir, 'config.json'),
    metrics: join(dir, 'metrics.jsonl'),
    summary: join(dir, 'summary.json'),
    checkpoints: join(dir, 'checkpoints'),
    lastCheckpoint: join(dir, 'checkpoints', 'last.ckpt'),
    stageCheckpoint: (stage: string) => join(dir, 'checkpoints', `${stage}.ckpt`),
    model: join(dir, 'model'),
    bundle: join(dir, 'bundle'),
    /** The black-box baseline attached to the run (`npm run bundle -- --baseline`), when there is one. */
    baseline: join(dir, 'baseline.json'),
  };
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

export async function readJson<T>(path: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(`cannot read ${path}: file missing`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${path} is not valid JSON (${(err as Error).message})`);
  }
}

/** Rewrite metrics.jsonl from the full history (kept in checkpoints), so a resumed run never duplicates lines. */
export async function writeMetrics(path: string, rows: object[]): Promise<void> {
  await writeFileAtomic(path, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
}

export async function appendLog(dir: string, line: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await appendFile(join(dir, 'train.log'), `${line}\n`);
}

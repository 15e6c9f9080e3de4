import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Parse CLI flags; an unknown flag or missing value prints usage and exits 2 (no stack trace). */
export function parseCli<T extends NonNullable<ParseArgsConfig['options']>>(options: T, usage: string) {
  try {
    const { values, positionals } = parseArgs({ options, allowPositionals: true, strict: true });
    if ((values as Record<string, unknown>).help) {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    return { values, positionals };
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${usage}\n`);
    process.exit(2);
  }
}

/** Run a CLI main: errors become one clear line and exit code 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    const e = err as Error;
    process.stderr.write(`error: ${e.message}\n`);
    if (process.env.PROTOATLAS_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  });
}

/** Resolve a user-given path against the directory npm was started from (npm runs workspace scripts inside the workspace). */
export function userPath(p: string): string {
  return resolve(process.env.INIT_CWD ?? process.cwd(), p);
}

/** For scripts that read their arguments by hand (benchmarks): `--help` or `-h` prints usage and exits 0. */
export function answerHelp(meta: ImportMeta, usage: string): void {
  // Only the script that was run answers: a module it imports (with its own usage) stays quiet.
  if (!meta.main) return;
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
}

/** The JSON overrides of a `--config` file (validated later against the preset), or undefined without one. */
export async function readOverride(file: string | undefined): Promise<unknown> {
  if (!file) return undefined;
  const text = await readFile(userPath(file), 'utf8').catch(() => {
    throw new Error(`cannot read config file ${file}`);
  });
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** `--refit-lr` and `--refit-epochs` (the edit CLI and the edit benches), checked; absent flags stay absent. */
export function refitFlags(lr: string | undefined, epochs: string | undefined): { lr?: number; epochs?: number } {
  const out: { lr?: number; epochs?: number } = {};
  if (lr !== undefined) {
    out.lr = Number(lr);
    if (!(Number.isFinite(out.lr) && out.lr > 0)) throw new Error(`--refit-lr must be a positive number (got "${lr}")`);
  }
  if (epochs !== undefined) {
    out.epochs = Number(epochs);
    if (!(Number.isInteger(out.epochs) && out.epochs >= 1 && out.epochs <= 100000))
      throw new Error(`--refit-epochs must be an integer 1-100000 (got "${epochs}")`);
  }
  return out;
}

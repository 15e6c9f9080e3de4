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

/** What a numeric flag accepts: a whole number or any finite number, within bounds (`above` is exclusive). */
export interface NumberRule {
  integer?: boolean;
  min?: number;
  max?: number;
  above?: number;
}

function describeRule(rule: NumberRule): string {
  if (rule.integer && rule.min !== undefined && rule.max !== undefined) return `an integer ${rule.min}-${rule.max}`;
  if (rule.above === 0 && rule.max === undefined) return 'a positive number';
  if (rule.min === 0 && rule.max === undefined) return 'a non-negative number';
  const lo = rule.above !== undefined ? `> ${rule.above}` : rule.min !== undefined ? `≥ ${rule.min}` : '';
  const hi = rule.max !== undefined ? `≤ ${rule.max}` : '';
  return `${rule.integer ? 'an integer' : 'a number'} ${[lo, hi].filter(Boolean).join(' and ')}`.trim();
}

/** A numeric flag, checked against its rule; absent stays absent, a bad value is an error naming the flag. */
export function numberFlag(name: string, value: string | undefined, rule: NumberRule): number | undefined {
  if (value === undefined) return undefined;
  const x = value.trim() === '' ? Number.NaN : Number(value);
  const ok =
    Number.isFinite(x) &&
    (!rule.integer || Number.isInteger(x)) &&
    (rule.min === undefined || x >= rule.min) &&
    (rule.max === undefined || x <= rule.max) &&
    (rule.above === undefined || x > rule.above);
  if (!ok) throw new Error(`--${name} must be ${describeRule(rule)} (got "${value}")`);
  return x;
}

/** For scripts that read their arguments by hand (benchmarks): a flag reader's error becomes a usage error (exit 2). */
export function orUsageExit<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  }
}

/** `numberFlag` for the benchmarks: a bad value is a usage error (exit 2). */
export function benchNumber(name: string, value: string | undefined, rule: NumberRule): number | undefined {
  return orUsageExit(() => numberFlag(name, value, rule));
}

/** `--refit-lr` and `--refit-epochs` (the edit CLI and the edit benches), checked; absent flags stay absent. */
export function refitFlags(lr: string | undefined, epochs: string | undefined): { lr?: number; epochs?: number } {
  const rate = numberFlag('refit-lr', lr, { above: 0 });
  const count = numberFlag('refit-epochs', epochs, { integer: true, min: 1, max: 100000 });
  return { ...(rate !== undefined ? { lr: rate } : {}), ...(count !== undefined ? { epochs: count } : {}) };
}

/** Numeric CLI flags (the edit CLI, train, bundle, baseline, the edit benches): absent stays absent, bad values name the flag. */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { numberFlag, refitFlags } from '../../trainer/src/cli/args.ts';

describe('refitFlags', () => {
  it('reads the flags it is given and leaves the others out', () => {
    expect(refitFlags(undefined, undefined)).toEqual({});
    expect(refitFlags('3e-3', undefined)).toEqual({ lr: 0.003 });
    expect(refitFlags(undefined, '30')).toEqual({ epochs: 30 });
  });

  it('refuses a rate that is not positive and epochs that are not a whole number from 1', () => {
    for (const lr of ['0', '-1', 'x', 'Infinity']) expect(() => refitFlags(lr, undefined)).toThrow(/--refit-lr/);
    for (const e of ['0', '1.5', 'x', '100001']) expect(() => refitFlags(undefined, e)).toThrow(/--refit-epochs/);
  });
});

describe('numberFlag', () => {
  it('reads a value within its rule and leaves an absent flag absent', () => {
    expect(numberFlag('nearest', '6', { integer: true, min: 0, max: 50 })).toBe(6);
    expect(numberFlag('radius', '0', { min: 0 })).toBe(0);
    expect(numberFlag('forget-lr', '1e-3', { above: 0 })).toBe(0.001);
    expect(numberFlag('nearest', undefined, { integer: true, min: 0, max: 50 })).toBeUndefined();
  });

  it('names the flag and what it accepts when the value is outside the rule', () => {
    expect(() => numberFlag('nearest', '51', { integer: true, min: 0, max: 50 })).toThrow(
      '--nearest must be an integer 0-50 (got "51")',
    );
    expect(() => numberFlag('stop-after-epochs', '0', { integer: true, min: 1 })).toThrow(
      '--stop-after-epochs must be an integer ≥ 1 (got "0")',
    );
    expect(() => numberFlag('forget-lr', '0', { above: 0 })).toThrow('--forget-lr must be a positive number (got "0")');
    expect(() => numberFlag('radius', '-1', { min: 0 })).toThrow('--radius must be a non-negative number (got "-1")');
    expect(() => numberFlag('scale', '3', { min: 0.5, max: 2 })).toThrow('--scale must be a number ≥ 0.5 and ≤ 2');
    for (const bad of ['', ' ', 'x', 'NaN', 'Infinity', '1.5'])
      expect(() => numberFlag('epochs', bad, { integer: true, min: 1, max: 100000 })).toThrow(/--epochs/);
  });
});

describe('the CLIs check their numeric flags before any work', () => {
  const run = (script: string, args: string[]) =>
    promisify(execFile)(
      process.execPath,
      [fileURLToPath(new URL(`../../trainer/src/cli/${script}`, import.meta.url)), ...args],
      {
        timeout: 60_000,
      },
    ).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );

  it('train refuses --stop-after-epochs that is not a whole number from 1', async () => {
    const out = await mkdtemp(join(tmpdir(), 'pa-flags-'));
    const r = await run('train.ts', ['--preset', 'demo', '--out', out, '--stop-after-epochs', '0']);
    expect(r?.code).toBe(1);
    expect(r?.stderr).toBe('error: --stop-after-epochs must be an integer ≥ 1 (got "0")\n');
  });

  it('baseline refuses --epochs that is not a whole number from 1', async () => {
    const out = await mkdtemp(join(tmpdir(), 'pa-flags-'));
    const r = await run('baseline.ts', ['--preset', 'cub200', '--out', out, '--epochs', 'ten']);
    expect(r?.code).toBe(1);
    expect(r?.stderr).toBe('error: --epochs must be an integer 1-100000 (got "ten")\n');
  });
});

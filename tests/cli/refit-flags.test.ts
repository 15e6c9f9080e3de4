/** The refit flags of the edit CLI and the edit benches: absent stays absent, bad values name the flag. */
import { describe, expect, it } from 'vitest';
import { refitFlags } from '../../trainer/src/cli/args.ts';

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

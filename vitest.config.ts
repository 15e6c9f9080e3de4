import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts', 'shared/test/**/*.test.ts', 'trainer/test/**/*.test.ts', 'edge/test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Every skipped test is listed with its reason at the end of a run.
    reporters: ['default', './tests/support/skip-reasons.ts'],
  },
});

import { defineConfig } from 'vitest/config';

/**
 * tfjs-backend-cpu prints this once per process on its first tensor in Node ("install our node backend"):
 * advice for users, noise in every tfjs suite. Only a log that is this banner and nothing else is dropped.
 */
const TFJS_NODE_BANNER =
  /^\s*=+\s*Hi, looks like you are running TensorFlow\.js in Node\.js\. To speed things up dramatically, install our node backend, visit https:\/\/github\.com\/tensorflow\/tfjs-node for more details\.\s*=+\s*$/;

export default defineConfig({
  test: {
    // Every suite lives under tests/.
    include: ['tests/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Every skipped test is listed with its reason at the end of a run, and every test a dead test process left unfinished.
    reporters: ['default', './tests/support/skip-reasons.ts', './tests/support/unfinished-tests.ts'],
    onConsoleLog: (log) => !TFJS_NODE_BANNER.test(log),
  },
});

/**
 * Vitest reporter: after a run, one line per test that was collected but never finished, with its file.
 * A test file whose worker process dies (a native crash, the OOM killer) leaves its running test in this
 * state; Vitest then reports only "Worker exited unexpectedly", without naming the file.
 */
import type { Reporter, TestModule } from 'vitest/node';

/** "file > test" for every test of `modules` still pending when the run ended. */
export function unfinishedTests(modules: ReadonlyArray<TestModule>): string[] {
  const names: string[] = [];
  for (const mod of modules) {
    for (const test of mod.children.allTests()) {
      if (test.result().state === 'pending') names.push(`${mod.relativeModuleId} > ${test.fullName}`);
    }
  }
  return names;
}

export default class UnfinishedTests implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const names = unfinishedTests(testModules);
    if (!names.length) return;
    const lines = names.map((n) => `unfinished: ${n} (the run ended before it did: its test process exited)`);
    process.stdout.write(`\n${lines.join('\n')}\n`);
  }
}

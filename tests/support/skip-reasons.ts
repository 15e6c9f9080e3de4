/**
 * Vitest reporter: after a run, one line per skipped test with its reason, so a
 * skip is never silent. The reason is the `ctx.skip(note)` note, else the
 * "(skipped: ...)" a conditional `skipIf` puts in its title.
 */
import type { Reporter, TestModule } from 'vitest/node';

/** "(skipped: why)" in a title; the reason may itself hold one level of parentheses. */
const IN_TITLE = / ?\(skipped: ([^()]*(?:\([^()]*\)[^()]*)*)\)/;

export function skipReason(fullName: string, note: string | undefined): string {
  return note ?? IN_TITLE.exec(fullName)?.[1] ?? 'no reason given';
}

export default class SkipReasons implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const lines: string[] = [];
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const r = test.result();
        if (r.state !== 'skipped') continue;
        const name = test.fullName.replace(IN_TITLE, '');
        lines.push(`skipped: ${mod.relativeModuleId} > ${name}: ${skipReason(test.fullName, r.note)}`);
      }
    }
    if (lines.length) process.stdout.write(`\n${lines.join('\n')}\n`);
  }
}

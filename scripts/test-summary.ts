/**
 * CI's closing line from Vitest's JSON report: `N passed, N failed[, N skipped]`.
 *
 *   node scripts/test-summary.ts <report.json> [failures before the tests]
 *
 * A test still running when the report was written (its test process died under it) counts as
 * failed, not skipped (tests/support/unfinished-tests.ts names it); a missing or unreadable report is one failure.
 */
import { readFileSync } from 'node:fs';

interface JsonReport {
  numPassedTests?: number;
  numFailedTests?: number;
  numFailedTestSuites?: number;
  numTotalTests?: number;
  testResults?: { name: string; assertionResults: { fullName: string; status: string }[] }[];
}

export interface TestSummary {
  passed: number;
  failed: number;
  skipped: number;
  /** "file > test" of each test the run ended under. */
  unfinished: string[];
}

export function summarise(report: JsonReport, failedBefore = 0): TestSummary {
  const tests = (report.testResults ?? []).flatMap((file) =>
    file.assertionResults.map((t) => ({ file: file.name, ...t })),
  );
  // The JSON reporter files a test that was running, queued or never reported as "pending".
  const unfinished = tests.filter((t) => t.status === 'pending').map((t) => `${t.file} > ${t.fullName}`);
  const failed =
    failedBefore +
    (report.numFailedTests ?? 0) +
    (report.numFailedTestSuites ?? 0) +
    unfinished.length +
    (report.numTotalTests === undefined ? 1 : 0);
  const skipped = tests.filter((t) => t.status === 'skipped' || t.status === 'todo').length;
  return { passed: report.numPassedTests ?? 0, failed, skipped, unfinished };
}

export function summaryLine({ passed, failed, skipped }: TestSummary): string {
  return `${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`;
}

if (import.meta.main) {
  const [path, before = '0'] = process.argv.slice(2);
  let report: JsonReport = {};
  try {
    report = JSON.parse(readFileSync(path, 'utf8')) as JsonReport;
  } catch {
    console.error(`test-summary: no readable Vitest JSON report at ${path}`);
  }
  const summary = summarise(report, Number(before));
  console.log(summaryLine(summary));
}

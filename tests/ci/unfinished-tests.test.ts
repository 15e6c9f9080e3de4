import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summarise, summaryLine } from '../../scripts/test-summary.ts';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const run = promisify(execFile);

/** A suite whose second test kills its own test process, as a native crash or the OOM killer would. */
const SUITE = `import { it } from 'vitest';
it('passes', () => {});
it.skip('is skipped', () => {});
it('dies under the run', async () => {
  await new Promise((r) => setTimeout(r, 50));
  process.kill(process.pid, 'SIGKILL');
});
`;

describe('a test process that dies under a test', () => {
  let dir: string;
  let stdout = '';
  let code = 0;
  let report: Parameters<typeof summarise>[0];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'protoatlas-unfinished-'));
    // The suite resolves vitest through the repository's node_modules.
    await symlink(join(REPO, 'node_modules'), join(dir, 'node_modules'));
    await writeFile(join(dir, 'dies.test.ts'), SUITE);
    const json = join(dir, 'report.json');
    const args = [
      'run',
      '--root',
      dir,
      `--reporter=${join(REPO, 'tests/support/unfinished-tests.ts')}`,
      '--reporter=json',
      `--outputFile=${json}`,
    ];
    try {
      ({ stdout } = await run(join(REPO, 'node_modules/.bin/vitest'), args, {
        cwd: dir,
        env: { ...process.env, CI: '1' },
      }));
    } catch (e) {
      const err = e as { stdout: string; code: number };
      stdout = err.stdout;
      code = err.code;
    }
    report = JSON.parse(await readFile(json, 'utf8'));
  }, 60_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  // Results of tests that ended shortly before the kill may not have reached the main process either:
  // those count as unfinished too, so only the test it died under is certain.
  it('fails the run, and the reporter names the test it died under', () => {
    expect(code).toBe(1);
    expect(stdout).toContain('unfinished: dies.test.ts > dies under the run');
    expect(stdout).not.toContain('is skipped');
  });

  it("counts that test as failed in CI's closing line, not as skipped", () => {
    const summary = summarise(report);
    expect(summary.unfinished).toContain(`${join(dir, 'dies.test.ts')} > dies under the run`);
    expect(summary.unfinished.every((n) => n.startsWith(join(dir, 'dies.test.ts')))).toBe(true);
    expect(summary.failed).toBe(summary.unfinished.length);
    expect(summary.passed + summary.failed).toBe(2);
    expect(summary.skipped).toBe(1);
    // Failures before the tests (typecheck, lint) add one; no report at all is one failure.
    expect(summarise(report, 1).failed).toBe(summary.failed + 1);
    expect(summaryLine(summarise({}))).toBe('0 passed, 1 failed');
    expect(summaryLine({ passed: 5, failed: 0, skipped: 0, unfinished: [] })).toBe('5 passed, 0 failed');
  });
});

/** Every command shown in README.md and docs/ runs as written (scripts exist, files answer --help with the flags). */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkCommand, checkDocCommands, extractCommands } from '../../scripts/check-doc-commands.ts';

describe('doc command check', () => {
  it('extracts commands from shell blocks and inline spans, split, without env, comments or prompts', () => {
    const md = [
      'Run `npm run train --workspace trainer',
      '-- --preset demo --print-config` first.',
      '```sh',
      'npm ci && npm test          # the suite',
      '$ FOO=1 BAR=x node_modules/.bin/node trainer/bench/durable-write.ts \\',
      '    .cache 1',
      'curl -X POST http://127.0.0.1:8787/classify | npx prettier --check',
      '```',
      '```json',
      '{ "npm": "run not-a-command" }',
      '```',
    ].join('\n');
    expect(extractCommands(md, 'x.md').map((c) => [c.line, c.text])).toEqual([
      [4, 'npm ci'],
      [4, 'npm test'],
      [5, 'node_modules/.bin/node trainer/bench/durable-write.ts .cache 1'],
      [7, 'npx prettier --check'],
      [1, 'npm run train --workspace trainer -- --preset demo --print-config'],
    ]);
  });

  it('finds a missing script, a wrong workspace, an unknown flag, a missing file and the shell node', async () => {
    expect(await checkCommand('npm run trian --workspace trainer')).toEqual([
      'no script "trian" in trainer/package.json',
    ]);
    expect(await checkCommand('npm run explain -- runs/x/bundle photo.jpg')).toEqual([
      'no script "explain" in package.json',
    ]);
    expect(await checkCommand('npm run train --workspace trainer -- --preset demo --epochz 3')).toEqual([
      'trainer/src/cli/train.ts does not list --epochz in its --help',
    ]);
    expect(await checkCommand('node_modules/.bin/node trainer/bench/no-such-bench.ts')).toEqual([
      'trainer/bench/no-such-bench.ts does not exist',
    ]);
    expect(await checkCommand('node trainer/bench/durable-write.ts .cache')).toEqual([
      "runs a .ts file with the shell's node, which may predate Node 24: write node_modules/.bin/node",
    ]);
    expect(await checkCommand('npm run train --workspace trainer -- --preset demo --print-config')).toEqual([]);
  });

  it('README.md stays a newcomer page: at most 8 KB, with the two set-up commands', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url));
    expect(readme.length).toBeLessThanOrEqual(8 * 1024);
    const commands = extractCommands(readme.toString('utf8'), 'README.md').map((c) => c.text);
    expect(commands).toEqual(expect.arrayContaining(['npm ci', 'npm start', 'npm test']));
    expect(readme.toString('utf8')).toContain('npm ci && npm start');
    expect(readme.toString('utf8')).toContain('npm ci && npm test');
  });

  it('every command in README.md and docs/*.md runs as written', { timeout: 300_000 }, async () => {
    const { commands, problems } = await checkDocCommands();
    expect(commands.length).toBeGreaterThan(40);
    const files = new Set(commands.map((c) => c.file));
    expect(files).toContain('README.md');
    expect(files).toContain('docs/guide.md');
    expect(problems.map((p) => `${p.command.file}:${p.command.line}: ${p.command.text}: ${p.problem}`)).toEqual([]);
  });
});

/**
 * Checks that every command the README and docs/ show runs as written: each `npm run` script exists in the
 * workspace the command names, each script or file it runs answers `--help` (exit 0, a usage text) and its
 * usage names every --flag the doc passes, and `.ts` files are run with the project's Node
 * (node_modules/.bin/node), not whatever `node` the shell finds.
 *
 *   npm run docs:commands     (also run by tests/docs/doc-commands.test.ts)
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const NODE = join(ROOT, 'node_modules/.bin/node');

export interface DocCommand {
  /** Repository-relative Markdown file and 1-based line. */
  file: string;
  line: number;
  /** One command (pipelines and `&&` chains are split), environment assignments removed. */
  text: string;
}

const SHELL_LANGS = new Set(['', 'sh', 'bash', 'shell', 'console']);
const ENV_ASSIGNMENT = /^[A-Z_][A-Z0-9_]*=\S*\s+/;
const COMMAND_START = /^(npm|npx|node|node_modules\/\.bin\/node)(\s|$)/;

/** Splits a shell line into commands and keeps the ones this check knows (npm, npx, node). */
function commandsOf(line: string): string[] {
  return line
    .split(/&&|\|\||;|\|/)
    .map((part) => {
      let text = part.replace(/\s+/g, ' ').trim();
      while (ENV_ASSIGNMENT.test(text)) text = text.replace(ENV_ASSIGNMENT, '');
      return text;
    })
    .filter((text) => COMMAND_START.test(text));
}

/** Commands in fenced shell blocks and in inline code spans of one Markdown file. */
export function extractCommands(markdown: string, file: string): DocCommand[] {
  const out: DocCommand[] = [];
  const lines = markdown.split('\n');
  let fence: string | null = null;
  let pending = '';
  let pendingLine = 0;
  lines.forEach((raw, i) => {
    const fenceMatch = /^\s*```(\S*)/.exec(raw);
    if (fenceMatch) {
      fence = fence === null ? fenceMatch[1] : null;
      return;
    }
    if (fence === null) return;
    if (!SHELL_LANGS.has(fence)) return;
    // A comment starts at a # after whitespace (none of the documented commands quote one).
    const code = raw.replace(/(^|\s)#.*$/, '').replace(/^\s*\$\s+/, '');
    if (!pending) pendingLine = i + 1;
    if (code.trimEnd().endsWith('\\')) {
      pending += `${code.trimEnd().slice(0, -1)} `;
      return;
    }
    const full = (pending + code).trim();
    pending = '';
    for (const text of commandsOf(full)) out.push({ file, line: pendingLine, text });
  });
  // Inline spans outside fences; a span may wrap over a line break.
  const prose = lines.map((l, i) => ({ l, i }));
  let inFence = false;
  const proseText = prose
    .map(({ l }) => {
      if (/^\s*```/.test(l)) {
        inFence = !inFence;
        return '';
      }
      return inFence ? '' : l;
    })
    .join('\n');
  for (const m of proseText.matchAll(/`([^`]+)`/g)) {
    const span = m[1].replace(/\s+/g, ' ').trim();
    const line = proseText.slice(0, m.index).split('\n').length;
    for (const text of commandsOf(span)) out.push({ file, line, text });
  }
  return out;
}

/** The Markdown files whose commands are checked: the README, docs/ and the site's README. */
export function docFiles(root = ROOT): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs, 'site/README.md'].filter((f) => existsSync(join(root, f)));
}

interface HelpResult {
  ok: boolean;
  output: string;
  problem?: string;
}

const helpCache = new Map<string, Promise<HelpResult>>();

/** Runs `<file> [fixed args] --help` with the project's Node; a file that never reads --help is not run. */
function askHelp(file: string, fixedArgs: string[], cwd: string): Promise<HelpResult> {
  const key = JSON.stringify([file, fixedArgs]);
  let result = helpCache.get(key);
  if (!result) {
    result = (async () => {
      const source = readFileSync(file, 'utf8');
      if (!/answerHelp\(|parseCli\(|'--help'|help: \{/.test(source)) {
        return { ok: false, output: '', problem: `${relative(ROOT, file)} does not answer --help` };
      }
      return new Promise<HelpResult>((done) => {
        execFile(
          NODE,
          [file, ...fixedArgs, '--help'],
          { cwd, timeout: 60_000, env: { ...process.env, INIT_CWD: ROOT } },
          (err, stdout, stderr) => {
            const output = `${stdout}${stderr}`;
            if (err) {
              done({
                ok: false,
                output,
                problem: `${relative(ROOT, file)} --help failed: ${output.trim().slice(0, 300)}`,
              });
            } else if (!/usage/i.test(stdout)) {
              done({ ok: false, output, problem: `${relative(ROOT, file)} --help printed no usage` });
            } else done({ ok: true, output });
          },
        );
      });
    })();
    helpCache.set(key, result);
  }
  return result;
}

/** Flags a command passes (`--out x`, `--top=3`), without the npm ones before `--`. */
const flagsOf = (args: string[]) => args.filter((a) => /^--[a-z]/.test(a)).map((a) => a.split('=')[0]);

/** Problems with a `node <file> args` command run from `cwd`; none when the file exists and answers --help. */
async function checkNodeFile(file: string, args: string[], cwd: string, fixedArgs: string[] = []): Promise<string[]> {
  const abs = resolve(cwd, file);
  if (!existsSync(abs)) return [`${file} does not exist`];
  const help = await askHelp(abs, fixedArgs, cwd);
  if (!help.ok) return [help.problem!];
  return flagsOf(args)
    .filter((flag) => !help.output.includes(flag))
    .map((flag) => `${relative(ROOT, abs)} does not list ${flag} in its --help`);
}

/** The package directory an npm command runs in (root, or the workspace named by path or package name). */
function workspaceDir(name: string | null): string | null {
  if (!name) return ROOT;
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
  for (const ws of root.workspaces) {
    const pkg = JSON.parse(readFileSync(join(ROOT, ws, 'package.json'), 'utf8')) as { name: string };
    if (ws === name || pkg.name === name) return join(ROOT, ws);
  }
  return null;
}

/** Problems with an `npm …` command: its script must exist where it runs, and what it runs must answer --help. */
async function checkNpm(words: string[], depth = 0): Promise<string[]> {
  const [verb, ...rest] = words;
  if (verb === 'ci' || verb === 'install' || verb === 'i') return [];
  const dash = rest.indexOf('--');
  const npmArgs = dash < 0 ? rest : rest.slice(0, dash);
  const scriptArgs = dash < 0 ? [] : rest.slice(dash + 1);
  let workspace: string | null = null;
  const positional: string[] = [];
  for (let i = 0; i < npmArgs.length; i++) {
    const a = npmArgs[i];
    if (a === '--workspace' || a === '-w') workspace = npmArgs[++i];
    else if (a.startsWith('--workspace=')) workspace = a.slice('--workspace='.length);
    else if (!a.startsWith('-')) positional.push(a);
  }
  const script = verb === 'run' || verb === 'run-script' ? positional[0] : verb;
  if (!script) return ['npm run without a script name'];
  if (!['run', 'run-script', 'start', 'test'].includes(verb)) return [`unexpected npm command "npm ${verb}"`];
  const dir = workspaceDir(workspace);
  if (!dir) return [`no workspace "${workspace}"`];
  const pkgFile = join(dir, 'package.json');
  const scripts = (JSON.parse(readFileSync(pkgFile, 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {};
  const body = scripts[script];
  if (body === undefined) return [`no script "${script}" in ${relative(ROOT, pkgFile)}`];
  if (depth > 3 || body.includes('&&')) return [];
  const words2 = body.split(/\s+/);
  if (words2[0] === 'node' && words2[1]?.endsWith('.ts')) {
    return checkNodeFile(words2[1], [...words2.slice(2), ...scriptArgs], dir, words2.slice(2));
  }
  if (words2[0] === 'npm') return checkNpm([...words2.slice(1), ...(dash < 0 ? [] : scriptArgs)], depth + 1);
  return [];
}

/** Problems with one documented command (empty when it runs as written). */
export async function checkCommand(text: string): Promise<string[]> {
  const words = text.split(/\s+/).filter(Boolean);
  const [cmd, ...args] = words;
  if (cmd === 'npm') return checkNpm(args);
  if (cmd === 'npx') {
    const bin = args.find((a) => !a.startsWith('-'));
    return bin && existsSync(join(ROOT, 'node_modules/.bin', bin)) ? [] : [`npx ${bin}: not installed by npm ci`];
  }
  const [file, ...rest] = args;
  if (!file) return [];
  const problems: string[] = [];
  if (cmd === 'node' && file.endsWith('.ts')) {
    problems.push("runs a .ts file with the shell's node, which may predate Node 24: write node_modules/.bin/node");
  }
  return [...problems, ...(await checkNodeFile(file, rest, ROOT))];
}

/** Every documented command and what is wrong with each; at most two checks run at once. */
export async function checkDocCommands(
  files = docFiles(),
): Promise<{ commands: DocCommand[]; problems: { command: DocCommand; problem: string }[] }> {
  const commands = files.flatMap((f) => extractCommands(readFileSync(join(ROOT, f), 'utf8'), f));
  const problems: { command: DocCommand; problem: string }[] = [];
  let next = 0;
  const worker = async () => {
    while (next < commands.length) {
      const command = commands[next++];
      for (const problem of await checkCommand(command.text)) problems.push({ command, problem });
    }
  };
  await Promise.all([worker(), worker()]);
  problems.sort((a, b) => a.command.file.localeCompare(b.command.file) || a.command.line - b.command.line);
  return { commands, problems };
}

if (import.meta.main) {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log(
      'usage: node_modules/.bin/node scripts/check-doc-commands.ts\n\nChecks every command in README.md and docs/.',
    );
    process.exit(0);
  }
  const { commands, problems } = await checkDocCommands();
  for (const { command, problem } of problems) {
    console.log(`${command.file}:${command.line}: ${command.text}\n  ${problem}`);
  }
  console.log(`${commands.length} commands checked, ${problems.length} problems`);
  process.exit(problems.length ? 1 : 0);
}

/**
 * Checks that imports follow the architecture written down in docs/architecture.md:
 * inside trainer/src each folder imports only from its own folder and from
 * folders of lower layers; shared imports nothing from trainer, edge or site;
 * edge and site import from shared only; tests import nothing from trainer/bench
 * (bench code's own tests in tests/bench excepted); and there is no import cycle,
 * in those trees or in tests, benchmarks and scripts.
 * Every import counts, type-only and dynamic ones included.
 *
 *   node scripts/check-imports.ts [repository root]
 *
 * Prints one line per problem, naming the file and the import, and exits 1 when
 * there is any. `npm run lint` runs it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The layers of trainer/src, lowest first. A folder may import from its own
 * folder and from folders in earlier rows; folders in the same row are
 * independent of each other. A folder in no row is itself a problem: place it.
 */
export const TRAINER_LAYERS: readonly (readonly string[])[] = [
  ['core'],
  ['tf', 'onnx', 'optim'],
  ['data'],
  ['backbone'],
  ['head'],
  ['config'],
  ['stages'],
  ['model'],
  ['analysis'],
  ['export'],
  ['bundle'],
  ['edit'],
  ['run'],
  ['cli'],
];

/** Source trees whose imports are checked, and what each may import besides itself. */
const PACKAGES = {
  shared: { dirs: ['shared/src'], may: [] as string[] },
  trainer: { dirs: ['trainer/src'], may: ['shared'] },
  edge: { dirs: ['edge/src'], may: ['shared'] },
  site: { dirs: ['site/src', 'site/widget'], may: ['shared'] },
} as const;
const SOURCE_DIRS = Object.values(PACKAGES).flatMap((p) => p.dirs);

/**
 * Imports across the rules that are there on purpose, each with its reason
 * (docs/architecture.md lists them). Keep this list short.
 */
export const EXCEPTIONS: readonly { from: string; to: string; why: string }[] = [
  {
    from: 'site/widget/src/types.ts',
    to: 'edge/src/schemas.ts',
    why: "type-only: the widget's view of POST /classify is derived from the edge's zod schemas so the two cannot drift",
  },
];
type PackageName = keyof typeof PACKAGES;

const SOURCE_EXTENSIONS = ['.ts', '.mts', '.tsx', '.js', '.mjs', '.astro'];

export interface ImportEdge {
  /** Repository-relative path of the importing file, with / separators. */
  from: string;
  /** The specifier as written. */
  specifier: string;
  /** Repository-relative path it resolves to, or null for a package outside the repository. */
  to: string | null;
  /** The workspace package a bare specifier names (@protoatlas/NAME), if any. */
  toPackage: string | null;
}

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (SOURCE_EXTENSIONS.some((e) => name.endsWith(e)) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The script parts of an .astro file: its frontmatter and its <script> elements. */
function astroScript(text: string): string {
  const parts: string[] = [];
  const fm = /^---\r?\n([\s\S]*?)\r?\n---/.exec(text);
  if (fm) parts.push(fm[1]);
  for (const m of text.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)) parts.push(m[1]);
  return parts.join('\n');
}

/** Every module specifier a file names: import, export … from, import(), require(). */
export function specifiers(file: string, text: string): string[] {
  const source = file.endsWith('.astro') ? astroScript(text) : text;
  return ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName);
}

function resolveFile(abs: string): string | null {
  if (existsSync(abs) && statSync(abs).isFile()) return abs;
  for (const e of SOURCE_EXTENSIONS) if (existsSync(abs + e)) return abs + e;
  for (const e of SOURCE_EXTENSIONS) if (existsSync(join(abs, `index${e}`))) return join(abs, `index${e}`);
  return null;
}

const posix = (p: string): string => p.split(sep).join('/');

/** The imports of every file under `dirs` (repository-relative), resolved. */
export function collectImports(root: string, dirs: readonly string[]): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const dir of dirs)
    for (const abs of walk(join(root, dir))) {
      const from = posix(relative(root, abs));
      for (const specifier of specifiers(abs, readFileSync(abs, 'utf8'))) {
        if (specifier.startsWith('.')) {
          const target = resolveFile(resolve(dirname(abs), specifier));
          const to = target ? posix(relative(root, target)) : posix(relative(root, resolve(dirname(abs), specifier)));
          edges.push({ from, specifier, to, toPackage: null });
        } else {
          const m = /^@protoatlas\/([^/]+)/.exec(specifier);
          edges.push({ from, specifier, to: null, toPackage: m ? m[1] : null });
        }
      }
    }
  return edges;
}

function packageOf(path: string): PackageName | null {
  for (const [name, p] of Object.entries(PACKAGES))
    if (p.dirs.some((d) => path.startsWith(`${d}/`))) return name as PackageName;
  return null;
}

/** Which top-level package a path lies in at all (trainer/bench is in trainer, not in trainer/src). */
function workspaceOf(path: string): string | null {
  const top = path.split('/')[0];
  return top in PACKAGES ? top : null;
}

const layerRank = new Map<string, number>();
TRAINER_LAYERS.forEach((row, i) => {
  for (const folder of row) layerRank.set(folder, i);
});

/** The trainer/src folder of a path (its first segment), or null outside trainer/src. */
function trainerFolder(path: string): string | null {
  const prefix = 'trainer/src/';
  if (!path.startsWith(prefix)) return null;
  const rest = path.slice(prefix.length);
  return rest.includes('/') ? rest.slice(0, rest.indexOf('/')) : '.';
}

function mayImportFolders(folder: string): string {
  const r = layerRank.get(folder) ?? 0;
  return [folder, ...TRAINER_LAYERS.slice(0, r).flat()].join(', ');
}

/** Direction problems of one import, as messages (empty when it is allowed). */
export function directionProblems(e: ImportEdge): string[] {
  const at = `${e.from}: imports '${e.specifier}'`;
  const fromPkg = packageOf(e.from);
  if (e.from.startsWith('tests/')) {
    if (e.to?.startsWith('trainer/bench/') && !e.from.startsWith('tests/bench/'))
      return [`${at}: tests take fixtures from tests/support or trainer/src, never from trainer/bench`];
    return [];
  }
  if (!fromPkg || EXCEPTIONS.some((x) => x.from === e.from && x.to === e.to)) return [];
  const allowed: readonly string[] = [fromPkg, ...PACKAGES[fromPkg].may];
  const toPkg = e.toPackage ?? (e.to ? (packageOf(e.to) ?? workspaceOf(e.to)) : null);
  if (e.to && !toPkg) return [`${at}: resolves outside the source trees (${e.to})`];
  if (toPkg && !allowed.includes(toPkg)) return [`${at}: ${fromPkg} may import only from ${allowed.join(' and ')}`];
  if (e.to && toPkg === fromPkg && !packageOf(e.to))
    return [`${at}: reaches outside ${PACKAGES[fromPkg].dirs.join(', ')} (${e.to})`];
  if (fromPkg !== 'trainer' || !e.to) return [];
  const a = trainerFolder(e.from)!;
  const b = trainerFolder(e.to)!;
  const ra = layerRank.get(a);
  const rb = layerRank.get(b);
  if (ra === undefined) return [`${at}: folder trainer/src/${a} is in no layer (add it to TRAINER_LAYERS)`];
  if (rb === undefined) return [`${at}: folder trainer/src/${b} is in no layer (add it to TRAINER_LAYERS)`];
  if (a === b || rb < ra) return [];
  const why = rb === ra ? 'a sibling layer' : 'a later layer';
  return [`${at}: ${a} → ${b} points at ${why}; ${a} may import only from ${mayImportFolders(a)}`];
}

/** Every import cycle among the files, one per strongly connected component, as a path a → … → a. */
export function findCycles(edges: readonly ImportEdge[]): string[][] {
  const graph = new Map<string, string[]>();
  for (const e of edges) {
    if (!e.to) continue;
    if (!graph.has(e.from)) graph.set(e.from, []);
    if (!graph.has(e.to)) graph.set(e.to, []);
    graph.get(e.from)!.push(e.to);
  }
  for (const list of graph.values()) list.sort();
  // Tarjan's strongly connected components, iteratively (deep import chains would overflow the stack).
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  for (const start of [...graph.keys()].sort()) {
    if (index.has(start)) continue;
    const work: { node: string; i: number }[] = [{ node: start, i: 0 }];
    index.set(start, next);
    low.set(start, next++);
    stack.push(start);
    onStack.add(start);
    while (work.length) {
      const top = work[work.length - 1];
      const out = graph.get(top.node)!;
      if (top.i < out.length) {
        const w = out[top.i++];
        if (!index.has(w)) {
          index.set(w, next);
          low.set(w, next++);
          stack.push(w);
          onStack.add(w);
          work.push({ node: w, i: 0 });
        } else if (onStack.has(w)) low.set(top.node, Math.min(low.get(top.node)!, index.get(w)!));
        continue;
      }
      work.pop();
      if (work.length) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.node)!));
      }
      if (low.get(top.node) === index.get(top.node)) {
        const comp: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          comp.push(w);
        } while (w !== top.node);
        if (comp.length > 1 || graph.get(top.node)!.includes(top.node)) components.push(comp.sort());
      }
    }
  }
  // One concrete cycle per component: breadth-first from its first file back to itself.
  return components.map((comp) => {
    const inComp = new Set(comp);
    const first = comp[0];
    const prev = new Map<string, string>();
    const queue = [first];
    let last: string | null = null;
    while (queue.length && !last) {
      const v = queue.shift()!;
      for (const w of graph.get(v)!) {
        if (!inComp.has(w)) continue;
        if (w === first) {
          last = v;
          break;
        }
        if (!prev.has(w)) {
          prev.set(w, v);
          queue.push(w);
        }
      }
    }
    const path = [first];
    for (let v = last!; v !== first; v = prev.get(v)!) path.splice(1, 0, v);
    path.push(first);
    return path;
  });
}

/** Every problem in the repository at `root`: direction problems, then cycles. */
export function checkImports(root: string): string[] {
  const sourceEdges = collectImports(root, SOURCE_DIRS);
  const testEdges = collectImports(root, ['tests']);
  const problems = [...sourceEdges, ...testEdges].flatMap(directionProblems);
  // Cycles are looked for everywhere: tests, benchmarks and scripts too.
  const otherEdges = collectImports(root, ['trainer/bench', 'edge/scripts', 'edge/bench', 'scripts']);
  for (const cycle of findCycles([...sourceEdges, ...testEdges, ...otherEdges]))
    problems.push(`import cycle: ${cycle.join(' → ')}`);
  return problems;
}

const USAGE = `usage: node_modules/.bin/node scripts/check-imports.ts [repository root]

Checks that imports follow the layers of docs/architecture.md and form no cycle (also run by npm run lint).`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const problems = checkImports(root);
  for (const p of problems) process.stdout.write(`${p}\n`);
  const files = SOURCE_DIRS.map((d) => walk(join(root, d)).length).reduce((a, b) => a + b, 0);
  process.stdout.write(
    problems.length
      ? `check-imports: ${problems.length} problem(s); the allowed directions are in docs/architecture.md\n`
      : `check-imports: ${files} files in ${SOURCE_DIRS.join(', ')}: imports follow the layers, no cycle\n`,
  );
  process.exitCode = problems.length ? 1 : 0;
}

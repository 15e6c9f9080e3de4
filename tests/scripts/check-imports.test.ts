import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkImports } from '../../scripts/check-imports.ts';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const SCRIPT = join(REPO, 'scripts/check-imports.ts');
const run = promisify(execFile);

/** A small repository with one of each kind of problem, and allowed imports beside them. */
const TREE: Record<string, string> = {
  'trainer/src/core/rng.ts': "import { step } from '../stages/step.ts';\nexport const rng = step;\n",
  'trainer/src/stages/step.ts': "import { loop } from './loop.ts';\nexport const step = loop;\n",
  'trainer/src/stages/loop.ts': "import { step } from './step.ts';\nexport const loop = () => step;\n",
  'trainer/src/data/types.ts': "import type { Cfg } from '../config/config.ts';\nexport type T = Cfg;\n",
  'trainer/src/config/config.ts':
    "export type Cfg = { a: number };\nexport const load = () => import('../cli/main.ts');\n",
  'trainer/src/cli/main.ts':
    "import { rng } from '../core/rng.ts';\nimport { m } from '@protoatlas/shared';\nexport { rng, m };\n",
  'trainer/src/tf/backend.ts': "export { onnx } from '../onnx/codec.ts';\n",
  'trainer/src/onnx/codec.ts': "import { rng } from '../core/rng.ts';\nexport const onnx = rng;\n",
  'trainer/src/extras/tool.ts': "import '../core/rng.ts';\n",
  'trainer/bench/fixture.ts': 'export const fixture = 1;\n',
  'shared/src/index.ts': "import { rng } from '../../trainer/src/core/rng.ts';\nexport const m = rng;\n",
  'edge/src/app.ts':
    "import { m } from '@protoatlas/shared';\nimport { rng } from '@protoatlas/trainer';\nexport { m, rng };\n",
  'site/src/pages/index.astro':
    "---\nimport { m } from '@protoatlas/shared';\nimport { rng } from '../../../trainer/src/core/rng.ts';\n---\n<p>{m}{rng}</p>\n",
  'tests/data/fixture.test.ts': "import { fixture } from '../../trainer/bench/fixture.ts';\nexport { fixture };\n",
  'tests/support/a.ts': "import { b } from './b.ts';\nexport const a = () => b;\n",
  'tests/support/b.ts': "import { a } from './a.ts';\nexport const b = () => a;\n",
  'tests/bench/fixture.test.ts': "import { fixture } from '../../trainer/bench/fixture.ts';\nexport { fixture };\n",
};

describe('scripts/check-imports.ts', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'check-imports-'));
    for (const [path, text] of Object.entries(TREE)) {
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), text);
    }
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('names every wrong-way import and cycle in a synthetic tree, and nothing else', () => {
    const problems = checkImports(root);
    const expected = [
      // A low layer importing a later one.
      "trainer/src/core/rng.ts: imports '../stages/step.ts': core → stages points at a later layer",
      // Type-only imports count.
      "trainer/src/data/types.ts: imports '../config/config.ts': data → config points at a later layer",
      // Dynamic imports count.
      "trainer/src/config/config.ts: imports '../cli/main.ts': config → cli points at a later layer",
      // Folders of one row are independent.
      "trainer/src/tf/backend.ts: imports '../onnx/codec.ts': tf → onnx points at a sibling layer",
      'folder trainer/src/extras is in no layer',
      "shared/src/index.ts: imports '../../trainer/src/core/rng.ts': shared may import only from shared",
      "edge/src/app.ts: imports '@protoatlas/trainer': edge may import only from edge and shared",
      "site/src/pages/index.astro: imports '../../../trainer/src/core/rng.ts': site may import only from site and shared",
      "tests/data/fixture.test.ts: imports '../../trainer/bench/fixture.ts': tests take fixtures from tests/support",
      'import cycle: trainer/src/stages/loop.ts → trainer/src/stages/step.ts → trainer/src/stages/loop.ts',
      // Cycles count outside the layered trees too.
      'import cycle: tests/support/a.ts → tests/support/b.ts → tests/support/a.ts',
    ];
    for (const e of expected)
      expect(
        problems.filter((p) => p.includes(e)),
        e,
      ).toHaveLength(1);
    expect(problems.filter((p) => p.startsWith('import cycle:'))).toHaveLength(2);
    expect(problems).toHaveLength(expected.length);
  });

  it('exits 1 and prints the problems when run on that tree', async () => {
    const err = await run(process.execPath, [SCRIPT, root]).then(
      () => null,
      (e: { code: number; stdout: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stdout).toContain("trainer/src/core/rng.ts: imports '../stages/step.ts'");
    expect(err?.stdout).toContain('check-imports: 11 problem(s)');
  });

  it('finds no problem in this repository', async () => {
    expect(checkImports(REPO)).toEqual([]);
    const { stdout } = await run(process.execPath, [SCRIPT]);
    expect(stdout).toMatch(/imports follow the layers, no cycle/);
  });
});

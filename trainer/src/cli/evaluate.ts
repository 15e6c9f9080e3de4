import type { SplitName } from '../data/types.ts';
import { evaluateModel, formatEvaluation } from '../run/evaluate-run.ts';
import { writeJson } from '../run/run-dir.ts';
import { parseCli, runMain, userPath } from './args.ts';

const USAGE = `usage: npm run evaluate --workspace trainer -- --model <run dir or model dir> --data <dataset dir> --split <train|val|test> [--out <file.json>]`;

runMain(async () => {
  const { values } = parseCli(
    {
      model: { type: 'string' },
      data: { type: 'string' },
      split: { type: 'string', default: 'val' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (!values.model || !values.data) throw new Error(`--model and --data are required\n\n${USAGE}`);
  if (!['train', 'val', 'test'].includes(values.split!)) throw new Error(`--split must be train, val or test (got "${values.split}")`);
  const report = await evaluateModel({ model: userPath(values.model!), data: userPath(values.data!), split: values.split as SplitName });
  process.stdout.write(formatEvaluation(report) + '\n');
  if (values.out) {
    await writeJson(userPath(values.out!), report);
    process.stdout.write(`wrote ${values.out}\n`);
  }
});

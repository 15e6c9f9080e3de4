import type { SplitName } from '../data/types.ts';
import { evaluateModel, formatEvaluation } from '../run/evaluate-run.ts';
import { writeJson } from '../core/run-dir.ts';
import { parseCli, runMain, userPath } from './args.ts';

const USAGE = `usage: npm run evaluate --workspace trainer -- --model <run dir or model dir> --data <dataset dir> --split <train|val|test|metrics> [--out <file.json>] [--no-explanations]

Reports top-1/top-5 and per-class accuracy, and explanation quality on the same split:
purity of each prototype's nearest patches, consistency and stability (Huang et al., ICCV 2023;
needs CUB part annotations) and, on the synthetic birds, how often prototype boxes cover a true part.`;

runMain(async () => {
  const { values } = parseCli(
    {
      model: { type: 'string' },
      data: { type: 'string' },
      split: { type: 'string', default: 'val' },
      out: { type: 'string' },
      'no-explanations': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (!values.model || !values.data) throw new Error(`--model and --data are required\n\n${USAGE}`);
  if (!['train', 'val', 'test', 'metrics'].includes(values.split!))
    throw new Error(`--split must be train, val, test or metrics (got "${values.split}")`);
  const report = await evaluateModel({
    model: userPath(values.model!),
    data: userPath(values.data!),
    split: values.split as SplitName,
    explanations: !values['no-explanations'],
  });
  process.stdout.write(`${formatEvaluation(report)}\n`);
  if (values.out) {
    await writeJson(userPath(values.out!), report);
    process.stdout.write(`wrote ${values.out}\n`);
  }
});

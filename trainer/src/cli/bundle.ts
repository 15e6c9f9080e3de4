import { buildBundle } from '../bundle/build-bundle.ts';
import { formatBundleReport } from '../bundle/format-report.ts';
import { parseCli, runMain, userPath } from './args.ts';

const USAGE = `usage: npm run bundle --workspace trainer -- <run dir> [--data <dataset dir>] [--out <bundle dir>] [--nearest 5] [--no-part-metrics]

Builds the model bundle of a finished run: prototype crops, source images with
boxes, heatmaps, nearest training/validation patches, explanation metrics and
manifest.json. Default output: <run dir>/bundle (replaced atomically).`;

runMain(async () => {
  const { values, positionals } = parseCli(
    {
      data: { type: 'string' },
      out: { type: 'string' },
      nearest: { type: 'string' },
      'no-part-metrics': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (positionals.length !== 1) throw new Error(`give exactly one run directory\n\n${USAGE}`);
  const nearest = values.nearest === undefined ? undefined : Number(values.nearest);
  if (nearest !== undefined && !(Number.isInteger(nearest) && nearest >= 0 && nearest <= 50)) throw new Error(`--nearest must be an integer 0-50 (got "${values.nearest}")`);
  const report = await buildBundle({
    run: userPath(positionals[0]),
    data: values.data ? userPath(values.data) : null,
    out: values.out ? userPath(values.out) : undefined,
    nearest,
    partMetrics: values['no-part-metrics'] ? false : undefined,
  });
  process.stdout.write(formatBundleReport(report) + '\n');
});

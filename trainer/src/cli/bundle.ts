import { buildBundle } from '../bundle/build-bundle.ts';
import { formatBundleReport, formatVerifyReport } from '../bundle/format-report.ts';
import { verifyBundle } from '../bundle/integrity.ts';
import { numberFlag, parseCli, runMain, userPath } from './args.ts';

const USAGE = `usage: npm run bundle --workspace trainer -- <run dir> [--data <dataset dir>] [--out <bundle dir>] [--nearest 5] [--no-part-metrics]
                                          [--baseline <baseline dir>]
       npm run bundle --workspace trainer -- --verify <bundle dir>

Builds the model bundle of a finished run: prototype crops, source images with
boxes, heatmaps, nearest training/validation patches, explanation metrics and
manifest.json with the size and sha256 of every file. Default output:
<run dir>/bundle (replaced atomically).
--baseline compares the model on its model card with a black box trained by
\`npm run baseline\` (a fine-tuned run's fair comparison), scored on the run's
validation images; the run keeps it (baseline.json) for later bundles and edits.
--verify checks a bundle against its manifest (every file present, of the listed
size and sha256, none extra) and exits 1 on any difference.`;

runMain(async () => {
  const { values, positionals } = parseCli(
    {
      data: { type: 'string' },
      out: { type: 'string' },
      nearest: { type: 'string' },
      'no-part-metrics': { type: 'boolean', default: false },
      baseline: { type: 'string' },
      verify: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.verify) {
    if (positionals.length !== 1) throw new Error(`give exactly one bundle directory to verify\n\n${USAGE}`);
    const report = await verifyBundle(userPath(positionals[0]));
    process.stdout.write(`${formatVerifyReport(report)}\n`);
    if (report.problems.length) process.exit(1);
    return;
  }
  if (positionals.length !== 1) throw new Error(`give exactly one run directory\n\n${USAGE}`);
  const nearest = numberFlag('nearest', values.nearest, { integer: true, min: 0, max: 50 });
  const report = await buildBundle({
    run: userPath(positionals[0]),
    data: values.data ? userPath(values.data) : null,
    out: values.out ? userPath(values.out) : undefined,
    nearest,
    partMetrics: values['no-part-metrics'] ? false : undefined,
    baseline: values.baseline ? userPath(values.baseline) : null,
  });
  process.stdout.write(`${formatBundleReport(report)}\n`);
});

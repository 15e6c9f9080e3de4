/** `npm run train`: resolve a preset (plus overrides) and train a run, or print the resolved config. */
import { PRESET_DESCRIPTIONS, PRESET_NAMES, resolveConfig } from '../config/presets.ts';
import { numberFlag, parseCli, readOverride, runMain, userPath } from './args.ts';

const USAGE = `usage: npm run train --workspace trainer -- --preset <${PRESET_NAMES.join('|')}> [--data <dataset dir>] --out <run dir> [--config <overrides.json>] [--resume]
       npm run train --workspace trainer -- --preset <name> --out <new run dir> [--config <overrides.json>] --from <run dir> --after <phase>
       npm run train --workspace trainer -- --preset <name> [--config <overrides.json>] --print-config

  --preset   ${PRESET_NAMES.map((n) => `${n}: ${PRESET_DESCRIPTIONS[n]}`).join('\n             ')}
  --data     dataset: CUB-200-2011 as distributed, the cropped layout (train_cropped/), or one folder per class
             (demo: optional, the synthetic dataset is generated on first use)
  --out      run directory: config.json, metrics.jsonl, checkpoints/, model/, summary.json
  --config   JSON file whose fields override the preset (validated; fields: docs/config.md)
  --resume   continue a stopped run from its last checkpoint
  --stop-after-epochs N  stop, checkpointed, after N epochs in this process (continue later with --resume)
  --from, --after  start a new run from the state <run dir> reached after <phase> (warmup, joint, push,
             pushTune, lastLayer); the config may differ only in what later phases read
  --print-config  print the resolved config (JSON, every default filled in) and exit without training`;

runMain(async () => {
  const { values } = parseCli(
    {
      preset: { type: 'string', default: 'demo' },
      data: { type: 'string' },
      out: { type: 'string' },
      config: { type: 'string' },
      resume: { type: 'boolean', default: false },
      from: { type: 'string' },
      after: { type: 'string' },
      'print-config': { type: 'boolean', default: false },
      'stop-after-epochs': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  const config = resolveConfig(values.preset!, await readOverride(values.config), values.config);
  if (values['print-config']) {
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    return;
  }
  if (!values.out) throw new Error(`--out <run dir> is required\n\n${USAGE}`);
  const stopAfterEpochs = numberFlag('stop-after-epochs', values['stop-after-epochs'], { integer: true, min: 1 });
  if ((values.from === undefined) !== (values.after === undefined))
    throw new Error(`--from <run dir> and --after <phase> go together\n\n${USAGE}`);
  // Loaded here, not at the top: --help and --print-config need no TensorFlow.js.
  const { trainRun } = await import('../run/train-run.ts');
  await trainRun({
    config,
    dataDir: values.data ? userPath(values.data!) : null,
    outDir: userPath(values.out!),
    resume: values.resume!,
    branch: values.from ? { fromDir: userPath(values.from), after: values.after! } : undefined,
    stopAfterEpochs,
  });
});

import { applyEdits } from '../edit/apply-edits.ts';
import { formatEditReport } from '../edit/format-edit-report.ts';
import { DEFAULT_FORGET } from '../stages/forget-concepts.ts';
import { numberFlag, parseCli, refitFlags, runMain, userPath } from './args.ts';

const D = DEFAULT_FORGET;
const USAGE = `usage: npm run edit --workspace trainer -- <run dir> --edits <edits.json> --out <new run dir>
       [--data <dataset dir>] [--forget-steps ${D.steps}] [--forget-weight ${D.forget}]
       [--remember-weight ${D.remember}] [--forget-lr ${D.lr.prototypes}] [--refit-lr <stage 3's>]
       [--refit-epochs <stage 3's>] [--force]

Applies an edits file (drop, relabel, forbid, keep; see docs/debugging.md) to a
finished run and writes a new run directory with the edited model and its
bundle. The parent run is not changed. Drop and relabel refit the last layer;
forbid and keep fine-tune add-on and prototypes (ProtoPDebug), then re-push.
--forget-weight weighs the forgetting term, the mean similarity of the live
prototypes to the forbidden patches (a mean, so one weight suits any number of
prototypes). --refit-lr and --refit-epochs replace the run's stage 3 rate and
epochs for the refit (after dropping many prototypes). Prints validation accuracy and explanation metrics before and after.`;

runMain(async () => {
  const { values, positionals } = parseCli(
    {
      edits: { type: 'string' },
      out: { type: 'string' },
      data: { type: 'string' },
      'forget-steps': { type: 'string' },
      'forget-weight': { type: 'string' },
      'remember-weight': { type: 'string' },
      'forget-lr': { type: 'string' },
      'refit-lr': { type: 'string' },
      'refit-epochs': { type: 'string' },
      force: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (positionals.length !== 1) throw new Error(`give exactly one run directory\n\n${USAGE}`);
  if (!values.edits) throw new Error(`--edits <edits.json> is required\n\n${USAGE}`);
  if (!values.out) throw new Error(`--out <new run dir> is required (edits never change a run in place)\n\n${USAGE}`);
  const steps = numberFlag('forget-steps', values['forget-steps'], { integer: true, min: 1, max: 100000 });
  const forget = numberFlag('forget-weight', values['forget-weight'], { min: 0 });
  const remember = numberFlag('remember-weight', values['remember-weight'], { min: 0 });
  const lr = numberFlag('forget-lr', values['forget-lr'], { above: 0 });
  const refit = refitFlags(values['refit-lr'], values['refit-epochs']);
  const report = await applyEdits({
    run: userPath(positionals[0]),
    edits: userPath(values.edits),
    out: userPath(values.out),
    data: values.data ? userPath(values.data) : null,
    force: values.force,
    refit,
    forget: {
      ...(steps !== undefined ? { steps } : {}),
      ...(forget !== undefined ? { forget } : {}),
      ...(remember !== undefined ? { remember } : {}),
      ...(lr !== undefined ? { lr: { addOn: lr, prototypes: lr } } : {}),
    },
  });
  process.stdout.write(`${formatEditReport(report)}\n`);
});

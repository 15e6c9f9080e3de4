import { join } from 'node:path';
import { MANIFEST_FILE, parseManifest } from '@protoatlas/shared';
import { exportBundleOnnx } from '../bundle/bundle-onnx.ts';
import { integrityList } from '../bundle/integrity.ts';
import { readBundle } from '../bundle/read-bundle.ts';
import { writeFileAtomic } from '../core/atomic.ts';
import { readModelJson } from '../model/model-file.ts';
import { exists, readJson, runPaths } from '../core/run-dir.ts';
import { parseCli, runMain, userPath } from './args.ts';

const USAGE = `usage: npm run export --workspace trainer -- <run dir> [--bundle <bundle dir>] [--data <dataset dir, for int8 calibration>]

Exports the run's trained model as ONNX into its bundle (default <run dir>/bundle; build
one first with npm run bundle) and records the files, input and outputs in manifest.json.
Training and npm run bundle already do this; use it to refresh the models alone.`;

runMain(async () => {
  const { values, positionals } = parseCli(
    { bundle: { type: 'string' }, data: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    USAGE,
  );
  if (positionals.length !== 1) throw new Error(`give exactly one run directory\n\n${USAGE}`);
  const run = userPath(positionals[0]);
  const bundleDir = values.bundle ? userPath(values.bundle) : runPaths(run).bundle;
  const { manifest } = await readBundle(bundleDir);
  const { config } = await readModelJson(run);
  const t0 = Date.now();
  // Calibration images come from the dataset the run trained on unless --data says otherwise.
  const summaryPath = runPaths(run).summary;
  const trainedOn = (await exists(summaryPath))
    ? ((await readJson<{ dataset?: { root?: string } }>(summaryPath)).dataset?.root ?? null)
    : null;
  const { onnx, fp32, int8 } = await exportBundleOnnx(run, bundleDir, {
    backend: config.backend,
    dataDir: values.data ? userPath(values.data) : trainedOn,
  });
  const files = { ...manifest.files, onnx, integrity: await integrityList(bundleDir) };
  const next = parseManifest({ ...manifest, files }, join(bundleDir, MANIFEST_FILE));
  await writeFileAtomic(join(bundleDir, MANIFEST_FILE), `${JSON.stringify(next)}\n`);
  const megabytes = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
  process.stdout.write(
    `${[
      `exported ${fp32.file} (${megabytes(fp32.bytes)}, opset ${fp32.opset}) ` +
        `in ${((Date.now() - t0) / 1000).toFixed(1)}s`,
      `  input  ${fp32.input.name} ${fp32.input.layout} [${fp32.manifest.inputs[0].shape.join(', ')}]: ${fp32.input.description}`,
      ...fp32.manifest.outputs.map((o) => `  output ${o.name} [${o.shape.join(', ')}]`),
      ...(int8
        ? [`exported ${int8.file} (${megabytes(int8.bytes)}, int8 weights; the edge and widget run it by default)`]
        : []),
    ].join('\n')}\n`,
  );
});

import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { manifestLastLayer } from '@protoatlas/shared';
import { explainImage, formatExplanation } from '../analysis/explain-image.ts';
import { reasoningPageInput, renderReasoningPage } from '../analysis/reasoning-page.ts';
import { loadBundleRunner, readBundle } from '../bundle/read-bundle.ts';
import { decodeImage } from '../data/decode.ts';
import { parseCli, runMain, userPath } from './args.ts';

const USAGE = `usage: npm run explain --workspace trainer -- <bundle dir> <image> [--top 3] [--evidence 3] [--out <page.html>] [--json <file.json>]

Classifies one photo with the bundle's model and explains it: the top classes
with probabilities, and for each the prototypes that contributed most points
(similarity x weight), with the box where each matched in the photo. Prints a
table and writes a "this looks like that" reasoning page
(default: <image name>.explanation.html in the current directory).`;

function intFlag(name: string, v: string | undefined, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer ${min}-${max} (got "${v}")`);
  return n;
}

runMain(async () => {
  const { values, positionals } = parseCli(
    {
      top: { type: 'string' },
      evidence: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (positionals.length !== 2) throw new Error(`give a bundle directory and an image\n\n${USAGE}`);
  const [bundleDir, imagePath] = positionals.map(userPath);
  const top = intFlag('top', values.top, 3, 1, 10);
  const evidence = intFlag('evidence', values.evidence, 3, 1, 20);
  const { manifest } = await readBundle(bundleDir);
  // Decode first: a bad image should fail before the model loads.
  const image = await decodeImage(imagePath, { orient: true });
  const runner = await loadBundleRunner(bundleDir, manifest, { quiet: true });
  const result = await explainImage(runner, manifest, imagePath, { top, evidence });
  process.stdout.write(`${formatExplanation(result, manifest, basename(imagePath))}\n`);

  const page = renderReasoningPage(
    await reasoningPageInput({
      fileName: basename(imagePath),
      image,
      explanation: result.explanation,
      model: {
        lastLayer: manifestLastLayer(manifest),
        numClasses: manifest.classes.length,
        pruned: manifest.prototypes.map((p) => p.pruned),
      },
      classNames: manifest.classes.map((c) => c.name),
      prototypeClass: manifest.prototypes.map((p) => p.classId),
      prototypeImage: async (j) => {
        const files = manifest.prototypes[j].files;
        if (!files)
          throw new Error(
            `prototype ${j} has no picture in the bundle (its source image was missing when the bundle was built)`,
          );
        return { bytes: await readFile(join(bundleDir, files.crop)), type: 'image/webp' };
      },
    }),
  );
  const out = values.out
    ? userPath(values.out)
    : userPath(`${basename(imagePath).replace(/\.[^.]+$/, '')}.explanation.html`);
  await writeFile(out, page);
  process.stdout.write(`reasoning page: ${out}\n`);
  if (values.json) {
    const e = result.explanation;
    const json = {
      image: basename(imagePath),
      width: result.width,
      height: result.height,
      model: manifest.model,
      predictions: e.predictions.map((p) => ({ ...p, label: manifest.classes[p.classId].name })),
    };
    await writeFile(userPath(values.json), `${JSON.stringify(json, null, 2)}\n`);
    process.stdout.write(`wrote ${values.json}\n`);
  }
});

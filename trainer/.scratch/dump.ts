import { writeFile } from 'node:fs/promises';
import { loadDataset } from '../src/data/load-dataset.ts';
import { decodeMany } from '../src/data/decode.ts';
const root = process.argv[2] ?? '/tmp/synth-default', S = Number(process.argv[3] ?? 56);
const ds = await loadDataset(root, { valPerClass: 0, seed: 0 });
for (const split of ['train', 'test'] as const) {
  const items = ds.splits[split];
  const { images } = await decodeMany(items, S, {});
  const buf = new Uint8Array(items.length * S * S * 3);
  images.forEach((im, i) => buf.set(im!.data, i * S * S * 3));
  await writeFile(`/tmp/synth-${split}-x.bin`, buf);
  await writeFile(`/tmp/synth-${split}-y.bin`, new Uint8Array(items.map(i => i.label)));
  console.log(split, items.length);
}

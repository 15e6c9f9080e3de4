import { loadDataset, describeDataset } from '../src/data/load-dataset.ts';
import { decodeImage, decodeMany } from '../src/data/decode.ts';
import sharp from 'sharp';
let t0 = performance.now();
const ds = await loadDataset('/work/shared/data/cub200', { valPerClass: 5, seed: 0 });
console.log(describeDataset(ds), `(${(performance.now()-t0).toFixed(0)} ms)`);
console.log('ids sample', ds.splits.train.slice(0,3).map(i=>i.id), 'skipped', ds.skipped.slice(0,3));
const all = [...ds.splits.train, ...ds.splits.val];
const perClassVal = new Map<number, number>(); for (const i of ds.splits.val) perClassVal.set(i.label, (perClassVal.get(i.label) ?? 0) + 1);
console.log('val per class min/max', Math.min(...perClassVal.values()), Math.max(...perClassVal.values()), perClassVal.size);
// find greyscale ones via metadata
const grey = [];
for (const it of all) { const m = await sharp(it.path).metadata(); if (m.channels !== 3 || m.space !== 'srgb') grey.push([it.path, m.space, m.channels]); }
console.log('non-sRGB-3ch files', grey);
for (const [p] of grey) { const img = await decodeImage(p as string, { size: 224 }); console.log(p, img.width, img.height, img.data.length === 224*224*3, [...img.data.slice(0, 6)]); }
t0 = performance.now();
const r = await decodeMany(all, 224, {});
console.log(`decoded ${r.images.filter(Boolean).length} at 224 in ${((performance.now()-t0)/1000).toFixed(1)} s, skipped ${r.skipped.length}`, r.skipped);

import { generateSynthetic } from '../src/data/synthetic.ts';
import sharp from 'sharp';
import { rm } from 'node:fs/promises';
const out = '/tmp/synth-default';
await rm(out, { recursive: true, force: true });
const t0 = performance.now();
const m = await generateSynthetic(out, { seed: 0 });
const dt = performance.now() - t0;
console.log(`generated ${Object.keys(m.images).length} images in ${(dt/1000).toFixed(2)} s`);
for (const c of m.classes) console.log(c.name, JSON.stringify(c.attributes));
// grid: 8 classes x 10 images, upscaled x3
const S = m.size, cols = 10, scale = 3;
const composites = [];
for (let c = 0; c < m.classes.length; c++) for (let i = 0; i < cols; i++) {
  const rel = `train/${m.classes[c].name}/${String(i).padStart(4,'0')}.png`;
  composites.push({ input: await sharp(`${out}/${rel}`).resize(S*scale, S*scale, { kernel: 'nearest' }).toBuffer(), left: i*S*scale, top: c*S*scale });
}
await sharp({ create: { width: cols*S*scale, height: m.classes.length*S*scale, channels: 3, background: '#000' } }).composite(composites).png().toFile('/tmp/synthetic-grid.png');

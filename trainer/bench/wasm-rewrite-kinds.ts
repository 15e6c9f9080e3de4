/**
 * Which QLinearConv kinds are worth rewriting to exact integer arithmetic in float
 * for onnxruntime-web (wasm): times the bundle's fp32 export (stock int8 backbone) as is
 * and rewritten for depthwise, +pointwise, +spatial convs, in onnxruntime-node and
 * onnxruntime-web, and checks the logits stay bit-identical.
 * Usage: node trainer/bench/wasm-rewrite-kinds.ts [bundle dir=runs/bench-cub200/bundle]
 */
import { readFile } from 'node:fs/promises';
import * as ortNode from 'onnxruntime-node';
import { rewriteForWasm } from '../src/export/quantize.ts';
import { createWebSession } from '../src/export/ort-web.ts';
import { answerHelp } from '../src/cli/args.ts';

answerHelp(
  import.meta,
  `usage: node_modules/.bin/node trainer/bench/wasm-rewrite-kinds.ts [bundle dir=runs/bench-cub200/bundle]

Times a bundle's fp32 export as is and with its QLinearConvs rewritten to float arithmetic per kind, in
onnxruntime-node and onnxruntime-web, and checks the logits stay bit-identical.`,
);
const bytes = new Uint8Array(await readFile(`${process.argv[2] ?? 'runs/bench-cub200/bundle'}/onnx/model.fp32.onnx`));
const x = Float32Array.from({ length: 224 * 224 * 3 }, (_, i) => (i * 37) % 256);
const variants: [string, Uint8Array][] = [['stock', bytes]];
for (const kinds of [['depthwise'], ['depthwise', 'pointwise'], ['depthwise', 'pointwise', 'spatial']] as const) {
  const r = rewriteForWasm(bytes, { kinds: [...kinds] });
  variants.push([kinds.join('+'), r.bytes]);
  console.log(kinds.join('+'), 'rewritten', r.rewritten);
}
let ref: Float32Array | null = null;
for (const [name, b] of variants) {
  const n = await ortNode.InferenceSession.create(b, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  const feeds = { image: new ortNode.Tensor('float32', x, [1, 224, 224, 3]) };
  let out = (await n.run(feeds)).logits.data as Float32Array;
  const tn: number[] = [];
  for (let i = 0; i < 21; i++) {
    const t = performance.now();
    out = (await n.run(feeds)).logits.data as Float32Array;
    tn.push(performance.now() - t);
  }
  ref ??= out;
  let d = 0;
  out.forEach((v, i) => (d = Math.max(d, Math.abs(v - ref![i]))));
  const w = await createWebSession(b, {});
  const tw: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t = performance.now();
    await w.run({ image: new (await import('onnxruntime-web')).Tensor('float32', x, [1, 224, 224, 3]) });
    tw.push(performance.now() - t);
  }
  const med = (a: number[]) => a.sort((p, q) => p - q)[Math.floor(a.length / 2)];
  console.log(
    `${name.padEnd(34)} node ${med(tn).toFixed(1)} ms  web ${med(tw).toFixed(1)} ms  ratio ${(med(tw) / med(tn)).toFixed(1)}x  max|logit - stock| ${d.toExponential(1)}`,
  );
}

/**
 * JPEG decoding alone, in Node: the shared libjpeg-turbo wasm at the scale the
 * edge picks for the model input (sharp's shrink-on-load) against the previous
 * decoder, @jsquash/jpeg (MozJPEG, whole image), on the photo benchmark's
 * JPEGs, taking turns so a busy machine slows both alike.
 *
 *   PROTOATLAS_BUNDLE=runs/demo/bundle node edge/bench/decode.ts [--runs 40] [--size 224] [--base-wasm <file>]
 * --base-wasm: another build of jpeg-decode.wasm to compare against instead of
 * @jsquash/jpeg, at the same scale (e.g. `git show main:shared/wasm/jpeg-decode.wasm > old.wasm`).
 * (the bundle only supplies the picture the photos are made from)
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import decodeJsquash, { init as initJsquash } from '@jsquash/jpeg/decode.js';
import { WasmJpegDecoder, jpegShrinkOnLoad, readImageHeader } from '@protoatlas/shared';
import { benchBundle } from './bench-bundle.ts';
import { benchPhotos, pct } from './photos.ts';
import { answerHelp } from '../scripts/usage.ts';

answerHelp(
  import.meta,
  `usage: PROTOATLAS_BUNDLE=<bundle> node_modules/.bin/node edge/bench/decode.ts [--runs 40] [--size 224]
  [--base-wasm <file>]

JPEG decoding alone: the shared libjpeg-turbo wasm at the edge's scale against @jsquash/jpeg, or
against another build of jpeg-decode.wasm with --base-wasm; wall and CPU time.`,
);

const require = createRequire(import.meta.url);
const compile = async (spec: string) => WebAssembly.compile(await readFile(require.resolve(spec)));

/** @jsquash's decoders build ImageData, which Node lacks. */
function ensureImageData(): void {
  const g = globalThis as { ImageData?: unknown };
  if (typeof g.ImageData === 'function') return;
  g.ImageData = function ImageData(this: object, data: Uint8ClampedArray, width: number, height: number) {
    Object.assign(this, { data, width, height, colorSpace: 'srgb' });
  };
}

async function main(): Promise<void> {
  const options = { runs: { type: 'string' }, size: { type: 'string' }, 'base-wasm': { type: 'string' } } as const;
  const { values } = parseArgs({ options });
  const baseWasm = values['base-wasm'];
  const runs = Number(values.runs ?? 40);
  const size = Number(values.size ?? 224);
  const { dir, manifest } = await benchBundle();
  const picture = manifest.prototypes.find((p) => p.files)?.files?.source;
  const photos = (await benchPhotos(picture ? join(dir, picture) : null)).filter((p) => p.type === 'image/jpeg');

  const mine = new WasmJpegDecoder(await compile('@protoatlas/shared/wasm/jpeg-decode.wasm'));
  const other = baseWasm
    ? new WasmJpegDecoder(await WebAssembly.compile(await readFile(resolve(process.env.INIT_CWD ?? '.', baseWasm))))
    : null;
  if (!other) {
    ensureImageData();
    const initOld = initJsquash as unknown as (m: WebAssembly.Module) => Promise<void>;
    await initOld(await compile('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm'));
  }

  console.log(`model input ${size}; ${runs} decodes each after 5 warm-up; ms p50 / p99 (wall), p50 (CPU)`);
  const columns = ['photo'.padEnd(24), 'scale'.padStart(6), 'libjpeg-turbo wasm'.padStart(22), ''.padStart(11)];
  columns.push((other ? 'base wasm' : '@jsquash/jpeg').padStart(18), ''.padStart(11));
  console.log(columns.join('') + 'ratio'.padStart(8));
  for (const photo of photos) {
    const head = readImageHeader(photo.bytes);
    const scale = jpegShrinkOnLoad(head.width, head.height, size, size);
    const buffer = photo.bytes.slice().buffer;
    // CPU time too: on a shared machine the wall time mostly measures the wait for a core.
    const cpuMine: number[] = [];
    const cpuOther: number[] = [];
    const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
    const runMine = async () => {
      const t = performance.now();
      const c = process.cpuUsage();
      await mine.decode(photo.bytes, scale);
      cpuMine.push(cpuMs(process.cpuUsage(c)));
      return performance.now() - t;
    };
    const runOld = async () => {
      const t = performance.now();
      const c = process.cpuUsage();
      if (other) await other.decode(photo.bytes, scale);
      else await decodeJsquash(buffer);
      cpuOther.push(cpuMs(process.cpuUsage(c)));
      return performance.now() - t;
    };
    for (let i = 0; i < 5; i++) {
      await runMine();
      await runOld();
    }
    cpuMine.length = 0;
    cpuOther.length = 0;
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < runs; i++) {
      a.push(await runMine());
      b.push(await runOld());
    }
    const cell = (xs: number[]) => `${pct(xs, 50).toFixed(1)} / ${pct(xs, 99).toFixed(1)}`;
    const ratio = `${(pct(b, 50) / pct(a, 50)).toFixed(1)}x`;
    const cpu = (xs: number[]) => `cpu ${pct(xs, 50).toFixed(1)}`;
    const row = [
      photo.name.padEnd(24),
      `1/${scale}`.padStart(6),
      cell(a).padStart(22),
      cpu(cpuMine).padStart(11),
      cell(b).padStart(18),
      cpu(cpuOther).padStart(11),
      ratio.padStart(8),
    ];
    console.log(row.join(''));
  }
}

await main();

/**
 * Chooses and initialises the TensorFlow.js backend for training.
 *
 * 'auto' prefers native TensorFlow (tfjs-node-gpu, then tfjs-node: optional
 * packages, often absent), then tfjs-backend-wasm (with our training kernels),
 * and only if wasm cannot start, the pure-JS cpu backend.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
// tfjs-core's Node bundle registers no gradients; tfjs-layers' bundle
// registers all of them into the shared registry as an import side effect.
import '@tensorflow/tfjs-layers';
import { registerWasmGradKernels } from './wasm-grad-kernels.ts';

export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** tfjs backend name, as tf.getBackend() reports it. */
  name: string;
  /** npm package providing it, with version, e.g. "@tensorflow/tfjs-backend-wasm@4.22.0". */
  package: string;
  /** One-line human description, e.g. "tfjs-backend-wasm 4.22.0, SIMD, 1 thread". */
  description: string;
}

export interface InitBackendOptions {
  /** Do not print the "backend: …" line to stderr. */
  quiet?: boolean;
}

const require = createRequire(import.meta.url);
const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/** Backends started so far, by name; each is announced once. */
const started = new Map<string, BackendInfo>();
/** What 'auto' resolved to, so repeat 'auto' calls skip the probing. */
let autoChoice: BackendInfo | null = null;
let wasmPathsSet = false;

function packageVersion(pkg: string): string {
  try {
    return (require(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function describe(name: string, pkg: string, details: string[]): BackendInfo {
  const version = packageVersion(pkg);
  return {
    name,
    package: `${pkg}@${version}`,
    description: [`${pkg.replace('@tensorflow/', '')} ${version}`, ...details].join(', '),
  };
}

function isModuleNotFound(err: unknown, pkg: string): boolean {
  const e = err as { code?: string; message?: string };
  return (
    (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') &&
    typeof e.message === 'string' &&
    e.message.includes(pkg)
  );
}

/** Imports a native tfjs-node package if installed; null when absent or broken. */
async function tryNative(pkg: string, quiet: boolean): Promise<BackendInfo | null> {
  try {
    // A variable specifier keeps TypeScript from requiring the optional package.
    const spec: string = pkg;
    await import(spec);
  } catch (err) {
    if (!isModuleNotFound(err, pkg) && !quiet) {
      // Installed but unloadable (e.g. missing libtensorflow): say why, then fall back.
      process.stderr.write(`backend: ${pkg} present but failed to load: ${(err as Error).message.split('\n')[0]}\n`);
    }
    return null;
  }
  if (!(await tf.setBackend('tensorflow'))) return null;
  return describe('tensorflow', pkg, [pkg.endsWith('-gpu') ? 'native TensorFlow, GPU build' : 'native TensorFlow']);
}

/** Points tfjs-backend-wasm at the .wasm binaries beside its Node bundle, wherever we run from. */
function locateWasmBinaries(): void {
  if (wasmPathsSet) return;
  wasmPathsSet = true;
  try {
    const dir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
    if (existsSync(join(dir, 'tfjs-backend-wasm-simd.wasm'))) setWasmPaths(`${dir}/`);
  } catch {
    // Leave the package's own lookup (its script directory) in place.
  }
}

async function initWasm(): Promise<BackendInfo | null> {
  registerWasmGradKernels();
  locateWasmBinaries();
  if (!(await tf.setBackend('wasm'))) return null;
  // Node has no wasm threads in tfjs 4.x; SIMD selects the -simd.wasm binary.
  const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  const threads = getThreadsCount();
  return describe('wasm', '@tensorflow/tfjs-backend-wasm', [
    simd ? 'SIMD' : 'no SIMD',
    `${threads} thread${threads === 1 ? '' : 's'}`,
  ]);
}

async function initCpu(): Promise<BackendInfo> {
  if (!(await tf.setBackend('cpu'))) throw new Error('backend: could not initialise the cpu backend');
  // Silence the cpu backend's one-time "install tfjs-node" banner: we already tried.
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  return describe('cpu', '@tensorflow/tfjs-backend-cpu', ['pure JavaScript']);
}

async function choose(prefer: BackendPreference, quiet: boolean): Promise<BackendInfo> {
  if (prefer === 'cpu') return initCpu();
  if (prefer === 'wasm') {
    const info = await initWasm();
    if (!info) throw new Error('backend: could not initialise tfjs-backend-wasm');
    return info;
  }
  for (const pkg of NATIVE_PACKAGES) {
    const info = await tryNative(pkg, quiet);
    if (info) return info;
  }
  if (prefer === 'tensorflow') {
    throw new Error('backend: neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed/loadable');
  }
  const info = await initWasm();
  if (info) return info;
  if (!quiet) process.stderr.write('backend: tfjs-backend-wasm failed to start; falling back to cpu\n');
  return initCpu();
}

/**
 * Initialises and activates a backend; resolves once tf.getBackend() is set.
 * Idempotent: asking again for a backend already started (or 'auto' again)
 * just re-activates it, silently.
 */
export async function initBackend(
  prefer: BackendPreference = 'auto',
  opts: InitBackendOptions = {},
): Promise<BackendInfo> {
  const known = prefer === 'auto' ? autoChoice : (started.get(prefer) ?? null);
  if (known) {
    if (tf.getBackend() !== known.name) await tf.setBackend(known.name);
    return known;
  }
  const chosen = await choose(prefer, opts.quiet ?? false);
  await tf.ready();
  let info = started.get(chosen.name);
  if (!info) {
    info = chosen;
    started.set(info.name, info);
    if (!opts.quiet) process.stderr.write(`backend: ${info.name} (${info.description})\n`);
  }
  if (prefer === 'auto') autoChoice = info;
  return info;
}

/** True when the active backend is tfjs-backend-wasm. */
export function isWasm(): boolean {
  return tf.getBackend() === 'wasm';
}

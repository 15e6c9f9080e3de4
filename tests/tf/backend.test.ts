/** initBackend: selection, the stderr line, idempotency. */
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, isWasm } from '../../trainer/src/tf/backend.ts';

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}
const hasNative = installed('@tensorflow/tfjs-node') || installed('@tensorflow/tfjs-node-gpu');

function captureStderr(): { lines: () => string[]; restore: () => void } {
  const written: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  return { lines: () => written.join('').split('\n').filter(Boolean), restore: () => spy.mockRestore() };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('initBackend', () => {
  it('starts cpu and prints one line', async () => {
    const err = captureStderr();
    const info = await initBackend('cpu');
    err.restore();
    expect(info.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(isWasm()).toBe(false);
    expect(err.lines()).toEqual([`backend: cpu (${info.description})`]);
    expect(info.package).toMatch(/^@tensorflow\/tfjs-backend-cpu@\d+\.\d+\.\d+$/);
  });

  it('starts wasm with SIMD info and prints one line', async () => {
    const err = captureStderr();
    const info = await initBackend('wasm');
    err.restore();
    expect(info.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(isWasm()).toBe(true);
    expect(info.package).toMatch(/^@tensorflow\/tfjs-backend-wasm@\d+\.\d+\.\d+$/);
    expect(info.description).toMatch(/^tfjs-backend-wasm \d+\.\d+\.\d+, (SIMD|no SIMD), \d+ threads?$/);
    expect(err.lines()).toEqual([`backend: wasm (${info.description})`]);
    // Node 24 has wasm SIMD, so the -simd binary must be the one in use.
    expect(info.description).toContain(', SIMD,');
  });

  it('is idempotent: a repeat call returns the same info silently', async () => {
    const first = await initBackend('wasm', { quiet: true });
    const err = captureStderr();
    const again = await initBackend('wasm');
    const auto = await initBackend('auto');
    err.restore();
    expect(again).toBe(first);
    expect(auto).toBe(first);
    expect(err.lines()).toEqual([]);
  });

  it('restores the chosen backend if something switched away', async () => {
    await initBackend('wasm', { quiet: true });
    await tf.setBackend('cpu');
    await initBackend('auto', { quiet: true });
    expect(tf.getBackend()).toBe('wasm');
  });

  const nativeNote = hasNative ? ' (skipped: @tensorflow/tfjs-node is installed)' : '';
  const fallbackTitle = `auto falls back to wasm when tfjs-node is absent; tensorflow then fails${nativeNote}`;
  it.skipIf(hasNative)(fallbackTitle, async () => {
    await initBackend('cpu', { quiet: true });
    const info = await initBackend('auto', { quiet: true });
    expect(info.name).toBe('wasm');
    await expect(initBackend('tensorflow', { quiet: true })).rejects.toThrow(/tfjs-node/);
    expect(tf.getBackend()).toBe('wasm');
  });

  // @tensorflow/tfjs-node is optional and not installed by npm ci: its install downloads a prebuilt libtensorflow.
  const noNativeNote = hasNative ? '' : ' (skipped: @tensorflow/tfjs-node is not installed)';
  it.runIf(hasNative)(`auto picks native TensorFlow when installed${noNativeNote}`, async () => {
    const info = await initBackend('auto', { quiet: true });
    expect(info.name).toBe('tensorflow');
  });

  it('computes on the wasm backend once initialised', async () => {
    await initBackend('wasm', { quiet: true });
    const y = tf.sum(tf.tensor1d([1, 2, 3]));
    expect(y.dataSync()[0]).toBe(6);
    y.dispose();
  });
});

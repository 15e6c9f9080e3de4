import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { afterEach, describe, expect, it, vi } from 'vitest';
import config from '../../vitest.config.ts';

const onConsoleLog = config.test!.onConsoleLog!;
const keeps = (log: string): boolean => onConsoleLog(log, 'stderr', undefined) !== false;

describe('vitest.config.ts onConsoleLog', () => {
  afterEach(() => vi.restoreAllMocks());

  it("drops the banner tfjs-backend-cpu prints on a fresh backend's first tensor, as printed", () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const backend = new MathBackendCPU();
    backend.write(new Float32Array([1]), [1], 'float32');
    backend.dispose();
    expect(warn).toHaveBeenCalledTimes(1);
    const printed = String(warn.mock.calls[0][0]);
    expect(printed).toContain('install our node backend');
    expect(keeps(`${printed}\n`)).toBe(false);
  });

  it('keeps every other log, including one that quotes the banner among other text', () => {
    expect(keeps('backend: wasm (tfjs-backend-wasm, SIMD)\n')).toBe(true);
    expect(keeps('Hi, looks like you are running TensorFlow.js in Node.js.\n')).toBe(true);
    expect(keeps('warning: install our node backend\n')).toBe(true);
  });
});

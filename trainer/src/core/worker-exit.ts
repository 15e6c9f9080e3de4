/**
 * Waiting for a worker thread asked to exit, with Worker.terminate() only as the fallback: terminating a
 * thread inside wasm or native code can abort the whole process.
 */
import type { Worker } from 'node:worker_threads';

/**
 * Waits up to `timeoutMs` for `exited` (the worker's 'exit' event), then terminates the worker if it has not
 * exited. Resolves true when it exited on its own.
 */
export async function exitOrTerminate(worker: Worker, exited: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), timeoutMs);
  });
  const outcome = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (outcome !== 'late') return true;
  await worker.terminate();
  return false;
}

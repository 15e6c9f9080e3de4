/**
 * Starts the Worker under workerd exactly as people do (`npm run dev
 * --workspace edge -- --port <port>`, PROTOATLAS_BUNDLE set) and waits for it
 * to answer, for the tests and the benchmark (HTTP on 127.0.0.1).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}

export interface DevServer {
  url: string;
  child: ChildProcess;
  /** Everything the server printed, for failure messages. */
  output: () => string;
  stop: () => Promise<void>;
}

export async function startWranglerDev(
  bundleDir: string,
  extraArgs: string[] = [],
  timeoutMs = 90_000,
): Promise<DevServer> {
  const port = await freePort();
  const npm = process.env.npm_execpath;
  // Through npm when the tests run under it (the documented command), else the same script directly.
  const [cmd, args] = npm
    ? [process.execPath, [npm, 'run', 'dev', '--workspace', 'edge', '--', '--port', String(port), ...extraArgs]]
    : [process.execPath, ['edge/scripts/wrangler.ts', 'dev', '--port', String(port), ...extraArgs]];
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, PROTOATLAS_BUNDLE: bundleDir, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so stop() ends npm, wrangler and workerd together.
    detached: true,
  });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<void>((done) => child.on('exit', () => done()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {}
      const killTimer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {}
      }, 5000);
      await exited;
      clearTimeout(killTimer);
    }
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited (${child.exitCode}):\n${log}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok && ((await res.json()) as { model: unknown }).model) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer within ${timeoutMs} ms:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { url, child, output: () => log, stop };
}

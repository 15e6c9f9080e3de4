import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchToCache, resolveWeights } from '../../trainer/src/backbone/download.ts';
import { cleanup, tempDir } from './helpers.ts';

const payload = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 31) % 256));
const payloadSha = createHash('sha256').update(payload).digest('hex');

let server: Server;
let base: string;
let requests: string[];
let dir: string;

beforeAll(async () => {
  dir = await tempDir('download');
  requests = [];
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/weights.bin' || req.url === '/other.bin') {
      res.writeHead(200, { 'content-length': String(payload.length) });
      // Two writes so the client sees a streamed body.
      res.write(payload.subarray(0, 100_000));
      setTimeout(() => res.end(payload.subarray(100_000)), 5);
    } else {
      res.writeHead(404, 'Not Found');
      res.end('nope');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await cleanup(dir);
});

describe('fetchToCache', () => {
  it('downloads, verifies and reports progress, then serves the cached copy without a request', async () => {
    const cacheDir = join(dir, 'ok');
    const progress: number[] = [];
    const p = await fetchToCache(`${base}/weights.bin`, {
      sha256: payloadSha,
      cacheDir,
      onProgress: (e) => progress.push(e.received),
    });
    expect(p).toBe(join(cacheDir, 'weights.bin'));
    expect(Buffer.compare(await readFile(p), payload)).toBe(0);
    expect(progress.at(-1)).toBe(payload.length);
    expect(requests.filter((r) => r === '/weights.bin')).toHaveLength(1);

    const again = await fetchToCache(`${base}/weights.bin`, { sha256: payloadSha.toUpperCase(), cacheDir });
    expect(again).toBe(p);
    expect(requests.filter((r) => r === '/weights.bin')).toHaveLength(1);
    expect(await readdir(cacheDir)).toEqual(['weights.bin']);
  });

  it('replaces a cached file whose hash does not match', async () => {
    const cacheDir = join(dir, 'stale');
    await fetchToCache(`${base}/other.bin`, { sha256: payloadSha, cacheDir, fileName: 'renamed.bin' });
    await writeFile(join(cacheDir, 'renamed.bin'), 'corrupted');
    const p = await fetchToCache(`${base}/other.bin`, { sha256: payloadSha, cacheDir, fileName: 'renamed.bin' });
    expect(Buffer.compare(await readFile(p), payload)).toBe(0);
    expect(requests.filter((r) => r === '/other.bin')).toHaveLength(2);
  });

  it('rejects a hash mismatch naming URL, expected and actual hash, and keeps nothing', async () => {
    const cacheDir = join(dir, 'mismatch');
    const wrong = '0'.repeat(64);
    const err = await fetchToCache(`${base}/weights.bin`, { sha256: wrong, cacheDir }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toContain(`${base}/weights.bin`);
    expect(msg).toContain(wrong);
    expect(msg).toContain(payloadSha);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('reports HTTP errors clearly', async () => {
    const cacheDir = join(dir, 'missing');
    await expect(fetchToCache(`${base}/nothing.bin`, { sha256: payloadSha, cacheDir })).rejects.toThrow(
      new RegExp(`${base}/nothing\\.bin.*404`),
    );
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('reports unreachable servers clearly', async () => {
    await expect(
      fetchToCache('http://127.0.0.1:1/x.bin', { sha256: payloadSha, cacheDir: join(dir, 'down') }),
    ).rejects.toThrow(/download of http:\/\/127\.0\.0\.1:1\/x\.bin failed/);
  });
});

describe('resolveWeights', () => {
  it('prefers a local path', async () => {
    const local = join(dir, 'local.bin');
    await writeFile(local, 'x');
    expect(await resolveWeights({ path: local, url: `${base}/weights.bin`, sha256: payloadSha }, join(dir, 'rw'))).toBe(
      local,
    );
  });

  it('downloads a URL into the cache', async () => {
    const p = await resolveWeights({ url: `${base}/weights.bin`, sha256: payloadSha }, join(dir, 'rw-url'));
    expect(Buffer.compare(await readFile(p), payload)).toBe(0);
  });

  it('names a missing path and says where to get the file', async () => {
    const missing = join(dir, 'nope', 'model.onnx');
    const err = (await resolveWeights({ path: missing }, dir).catch((e: Error) => e)) as Error;
    expect(err.message).toContain(missing);
    expect(err.message).toMatch(/PROTOPNET_DATA|url/);
    const withUrl = (await resolveWeights({ path: missing, url: `${base}/weights.bin` }, dir).catch(
      (e: Error) => e,
    )) as Error;
    expect(withUrl.message).toContain(`${base}/weights.bin`);
  });

  it('asks for a sha256 with a URL, and for something at all', async () => {
    await expect(resolveWeights({ url: `${base}/weights.bin` }, dir)).rejects.toThrow(/sha256/);
    await expect(resolveWeights({}, dir)).rejects.toThrow(/path.*url/);
  });
});

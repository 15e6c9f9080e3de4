/**
 * Weights files: a local path, or a URL downloaded once into a cache and
 * verified by sha256. Downloads stream to a temp file that is renamed into
 * place only after the hash matches, so a cache never holds a bad file.
 */
import { createWriteStream } from 'node:fs';
import { access, mkdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import { commitTempFile, tempPathFor } from '../core/atomic.ts';
import { sha256File } from '../core/sha256.ts';

export interface FetchProgress {
  received: number;
  /** From Content-Length; undefined when the server does not say. */
  total?: number;
}

export interface FetchToCacheOptions {
  /** Expected sha256 (hex) of the file. */
  sha256: string;
  cacheDir: string;
  /** Name in the cache; default = last URL path segment. */
  fileName?: string;
  onProgress?: (p: FetchProgress) => void;
}

/** Path of the cached copy of `url`, downloading and verifying it first if needed. */
export async function fetchToCache(url: string, opts: FetchToCacheOptions): Promise<string> {
  const expected = opts.sha256.toLowerCase();
  const name = opts.fileName ?? (basename(new URL(url).pathname) || 'download');
  await mkdir(opts.cacheDir, { recursive: true });
  const dest = join(opts.cacheDir, name);
  if ((await fileExists(dest)) && (await sha256File(dest)) === expected) return dest;

  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`download of ${url} failed: ${describe(e)}`);
  }
  if (!res.ok || !res.body) throw new Error(`download of ${url} failed: HTTP ${res.status} ${res.statusText}`.trim());
  const lengthHeader = res.headers.get('content-length');
  const total = lengthHeader ? Number(lengthHeader) : undefined;

  const tmp = tempPathFor(dest);
  let received = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      received += chunk.length;
      opts.onProgress?.({ received, total });
      done(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), tap, createWriteStream(tmp));
  } catch (e) {
    await rm(tmp, { force: true });
    throw new Error(`download of ${url} failed after ${received} bytes: ${describe(e)}`);
  }
  const actual = await sha256File(tmp);
  if (actual !== expected) {
    await rm(tmp, { force: true });
    throw new Error(`sha256 mismatch for ${url}: expected ${expected}, got ${actual}; the file was not kept`);
  }
  await commitTempFile(tmp, dest);
  return dest;
}

export interface WeightsSpec {
  path?: string;
  url?: string;
  sha256?: string;
}

/** A local path wins; else a URL is fetched into `cacheDir` (sha256 required). */
export async function resolveWeights(spec: WeightsSpec, cacheDir: string): Promise<string> {
  if (spec.path) {
    if (await fileExists(spec.path)) return spec.path;
    const where = spec.url
      ? `download it from ${spec.url}, or remove "path" to let the trainer fetch it`
      : 'backbones ship under ../shared/data/backbones (set PROTOPNET_DATA to that data folder), or give a "url" and "sha256" to download one';
    throw new Error(`backbone weights not found: ${spec.path}; ${where}`);
  }
  if (spec.url) {
    if (!spec.sha256)
      throw new Error(
        `backbone weights URL ${spec.url} has no sha256: add the file's sha256 so the download can be verified`,
      );
    return fetchToCache(spec.url, { sha256: spec.sha256, cacheDir });
  }
  throw new Error('backbone weights: give a "path" to a local file or a "url" with its "sha256"');
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as Error & { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
  }
  return String(e);
}

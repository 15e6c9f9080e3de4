/** The asset store on Node: files read from the bundle directory. */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { contentTypeFor } from '@protoatlas/shared';
import { etagMatches, isPublicBundlePath, type AssetStore } from './assets.ts';

export function directoryAssetStore(dir: string): AssetStore {
  const root = resolve(dir);
  return {
    async fetch(path, init) {
      if (!isPublicBundlePath(path)) return new Response(null, { status: 404 });
      const file = join(root, path);
      const info = await stat(file).catch(() => null);
      if (!info?.isFile()) return new Response(null, { status: 404 });
      const etag = `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
      const headers = { etag, 'content-type': contentTypeFor(path) };
      const ifNoneMatch = new Headers(init?.headers).get('if-none-match');
      if (etagMatches(ifNoneMatch, etag)) return new Response(null, { status: 304, headers });
      return new Response(new Uint8Array(await readFile(file)), {
        status: 200,
        headers: { ...headers, 'content-length': String(info.size) },
      });
    },
  };
}

/**
 * The bundle's files (manifest, ONNX model, prototype pictures), as the app
 * sees them: a store addressed by bundle-relative path. On Workers it is the
 * static-assets binding (the bundle staged under /bundle/); on Node, the
 * bundle directory itself. Served to clients under /bundle/<path>.
 */
import { contentTypeFor, type ManifestFileRecord } from '@protoatlas/shared';

export interface AssetStore {
  /** A bundle file by relative path ('prototypes/0000/crop.webp'); 404 when absent. */
  fetch(path: string, init?: { headers?: HeadersInit }): Promise<Response>;
}

/** Where clients fetch bundle files. */
export const ASSET_PREFIX = '/bundle/';

/** Only these parts of a bundle are public: not the trainer's model or the backbone copy. */
export function isPublicBundlePath(path: string): boolean {
  if (
    !path ||
    path.startsWith('/') ||
    path.includes('\\') ||
    path.split('/').some((s) => s === '..' || s === '.' || s === '')
  )
    return false;
  return path === 'manifest.json' || path.startsWith('prototypes/') || path.startsWith('onnx/');
}

/** Workers: the ASSETS binding, with the staged bundle under /bundle/. */
export function workersAssetStore(binding: { fetch: (req: Request) => Promise<Response> }): AssetStore {
  return {
    fetch: (path, init) =>
      binding.fetch(new Request(`https://assets.invalid${ASSET_PREFIX}${path}`, { headers: init?.headers })),
  };
}

/** Whether an If-None-Match header names `etag` (weak comparison, lists and "*" included). */
export function etagMatches(ifNoneMatch: string | null, etag: string): boolean {
  if (!ifNoneMatch) return false;
  const strip = (t: string) => t.trim().replace(/^W\//, '');
  return ifNoneMatch.split(',').some((t) => t.trim() === '*' || strip(t) === strip(etag));
}

export interface ServeOptions {
  /** Cache-Control max-age, seconds. */
  maxAge: number;
  /** The file's entry in the manifest's integrity list: its sha256 becomes the ETag. */
  record?: ManifestFileRecord | null;
}

/**
 * Static-file response for a client, for GET and HEAD: the store's answer with
 * the app's cache policy. A file in the manifest's integrity list gets its
 * sha256 as a strong ETag (the same on every deployment of the bundle), and a
 * matching If-None-Match is answered 304 without reading the file; other files
 * (the manifest) keep the store's own ETag and revalidation.
 */
export async function serveAsset(
  store: AssetStore,
  path: string,
  req: Request,
  opts: ServeOptions,
): Promise<Response | null> {
  if (!isPublicBundlePath(path)) return null;
  const cacheControl = `public, max-age=${opts.maxAge}`;
  const inm = req.headers.get('if-none-match');
  const record = opts.record;
  if (record) {
    const etag = `"${record.sha256}"`;
    if (etagMatches(inm, etag)) {
      return new Response(null, { status: 304, headers: { etag, 'cache-control': cacheControl } });
    }
    const res = await store.fetch(path);
    if (res.status === 404) return null;
    if (!res.ok) return res;
    const headers = new Headers({ etag, 'cache-control': cacheControl, 'content-type': contentTypeFor(path) });
    // The length of what is sent, from the store; a HEAD without one states the listed size.
    const length = res.headers.get('content-length') ?? (req.method === 'HEAD' ? String(record.bytes) : null);
    if (length) headers.set('content-length', length);
    if (req.method === 'HEAD') await res.body?.cancel();
    return new Response(req.method === 'HEAD' ? null : res.body, { status: 200, headers });
  }
  const res = await store.fetch(path, { headers: inm ? { 'if-none-match': inm } : {} });
  if (res.status === 404) return null;
  if (req.method === 'HEAD') await res.body?.cancel();
  const out = new Response(req.method === 'HEAD' ? null : res.body, res);
  out.headers.set('cache-control', cacheControl);
  if (!out.headers.has('content-type') && res.status === 200) out.headers.set('content-type', contentTypeFor(path));
  return out;
}

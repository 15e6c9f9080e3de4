/**
 * The bundle's files (manifest, ONNX model, prototype pictures), as the app
 * sees them: a store addressed by bundle-relative path. On Workers it is the
 * static-assets binding (the bundle staged under /bundle/); on Node, the
 * bundle directory itself. Served to clients under /bundle/<path>.
 */

export interface AssetStore {
  /** A bundle file by relative path ('prototypes/0000/crop.webp'); 404 when absent. */
  fetch(path: string, init?: { headers?: HeadersInit }): Promise<Response>;
}

/** Where clients fetch bundle files. */
export const ASSET_PREFIX = '/bundle/';

/** Only these parts of a bundle are public: not the trainer's model or the backbone copy. */
export function isPublicBundlePath(path: string): boolean {
  if (!path || path.startsWith('/') || path.includes('\\') || path.split('/').some((s) => s === '..' || s === '.' || s === '')) return false;
  return path === 'manifest.json' || path.startsWith('prototypes/') || path.startsWith('onnx/');
}

/** Workers: the ASSETS binding, with the staged bundle under /bundle/. */
export function workersAssetStore(binding: { fetch: (req: Request) => Promise<Response> }): AssetStore {
  return {
    fetch: (path, init) => binding.fetch(new Request(`https://assets.invalid${ASSET_PREFIX}${path}`, { headers: init?.headers })),
  };
}

const CONTENT_TYPES: Record<string, string> = {
  json: 'application/json; charset=utf-8',
  webp: 'image/webp',
  png: 'image/png',
  jpg: 'image/jpeg',
  onnx: 'application/octet-stream',
};

export function contentTypeFor(path: string): string {
  return CONTENT_TYPES[path.slice(path.lastIndexOf('.') + 1).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * Static-file response for a client: the store's answer with the app's cache
 * policy. Bundle files only change with the model version, so a day of caching
 * plus the store's ETag for revalidation.
 */
export async function serveAsset(store: AssetStore, path: string, req: Request, maxAge: number): Promise<Response | null> {
  if (!isPublicBundlePath(path)) return null;
  const headers: Record<string, string> = {};
  const inm = req.headers.get('if-none-match');
  if (inm) headers['if-none-match'] = inm;
  const res = await store.fetch(path, { headers });
  if (res.status === 404) return null;
  const out = new Response(req.method === 'HEAD' ? null : res.body, res);
  out.headers.set('cache-control', `public, max-age=${maxAge}`);
  if (!out.headers.has('content-type') && res.status === 200) out.headers.set('content-type', contentTypeFor(path));
  return out;
}

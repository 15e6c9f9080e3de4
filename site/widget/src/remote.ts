import type { ClassifyOptions, ClassifyResponse } from './types.ts';

/** POST the photo's bytes to the edge API and return its explanation. */
export async function classifyRemote(
  api: string,
  photo: Blob,
  opts: ClassifyOptions,
  signal?: AbortSignal,
): Promise<ClassifyResponse> {
  const url = new URL(api, document.baseURI);
  url.searchParams.set('top', String(opts.top));
  url.searchParams.set('evidence', String(opts.evidence));
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      body: photo,
      headers: { 'content-type': photo.type || 'application/octet-stream' },
      signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new Error(`could not reach ${url.origin} (offline, or the API does not allow this site's origin)`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`the API answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) {
    const err = (body as { error?: { message?: string } | string }).error;
    const message = typeof err === 'string' ? err : err?.message;
    throw new Error(message ? `the API refused the photo: ${message}` : `the API answered ${res.status}`);
  }
  const r = body as ClassifyResponse;
  if (!Array.isArray(r.predictions)) throw new Error('the API answer has no predictions');
  // Picture URLs may be relative to the API.
  for (const p of r.predictions) {
    for (const e of p.evidence) {
      if (e.prototypeImageUrl) e.prototypeImageUrl = new URL(e.prototypeImageUrl, url).href;
      if (e.sourceImageUrl) e.sourceImageUrl = new URL(e.sourceImageUrl, url).href;
    }
  }
  return r;
}

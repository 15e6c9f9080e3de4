/**
 * Content types of the files ProtoAtlas serves (bundle files, the widget's
 * scripts and wasm), by extension: one table for the edge and the site.
 */
const CONTENT_TYPES: Record<string, string> = {
  json: 'application/json; charset=utf-8',
  webp: 'image/webp',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  onnx: 'application/octet-stream',
  bin: 'application/octet-stream',
  wasm: 'application/wasm',
  mjs: 'text/javascript; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  html: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** The content type for a file path or name; application/octet-stream when the extension is unknown. */
export function contentTypeFor(path: string): string {
  const name = path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
  const dot = name.lastIndexOf('.');
  return (dot > 0 && CONTENT_TYPES[name.slice(dot + 1).toLowerCase()]) || 'application/octet-stream';
}

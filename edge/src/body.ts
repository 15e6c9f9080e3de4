/**
 * The upload: raw image bytes (image/jpeg, image/png, image/webp) or a
 * multipart form with a file field `image`. The body is read with a hard cap,
 * so a client cannot make the server buffer more than the limit.
 */
import { IMAGE_MEDIA_TYPES, sniffImageFormat } from '@protoatlas/shared';
import { ApiError } from './errors.ts';

export const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp'] as const;
export const MULTIPART = 'multipart/form-data';
export const IMAGE_FIELD = 'image';

export interface Upload {
  bytes: Uint8Array;
  /** The media type the client declared for the image (the part's type for multipart). */
  declaredType: string;
}

function mediaType(header: string | null | undefined): string {
  return (header ?? '').split(';')[0].trim().toLowerCase();
}

const tooLarge = (max: number) =>
  new ApiError('body_too_large', `the body exceeds ${max} bytes (${Math.round(max / 1024 / 1024)} MB)`);

/**
 * Reads a stream into one buffer, stopping as soon as it passes `max` bytes.
 * With the declared length (Content-Length) the buffer is allocated once and
 * each chunk copied in as it arrives, so a large upload is held once, not
 * twice (chunks plus their concatenation); a byte stream (a request body in
 * workerd and Node) is then read by readByob, whose reads take whatever has
 * arrived rather than one small network chunk each.
 */
export async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  max: number,
  declaredLength?: number,
): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const sized = declaredLength !== undefined && declaredLength > 0 && declaredLength <= max;
  const byob = sized ? await readByob(body, max, declaredLength) : null;
  if (byob) return byob;
  const reader = body.getReader();
  const out = new Uint8Array(sized ? declaredLength : 0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (total + value.byteLength > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge(max);
    }
    if (total + value.byteLength <= out.length) out.set(value, total);
    else chunks.push(value);
    total += value.byteLength;
  }
  if (chunks.length === 0) return out.subarray(0, total);
  if (out.length === 0 && chunks.length === 1) return chunks[0];
  // More than declared (or nothing declared): join what was copied and the rest.
  const joined = new Uint8Array(total);
  let o = Math.min(out.length, total - chunks.reduce((n, c) => n + c.byteLength, 0));
  joined.set(out.subarray(0, o));
  for (const c of chunks) {
    joined.set(c, o);
    o += c.byteLength;
  }
  return joined;
}

/**
 * readCapped for a byte stream (request bodies in workerd and Node) of a
 * declared length: reads straight into one buffer, as many bytes per read as
 * have arrived, instead of one small chunk per read. Null when the stream is
 * not a byte stream.
 */
async function readByob(
  body: ReadableStream<Uint8Array>,
  max: number,
  declaredLength: number,
): Promise<Uint8Array | null> {
  let reader: ReadableStreamBYOBReader;
  try {
    reader = body.getReader({ mode: 'byob' });
  } catch {
    return null;
  }
  // One byte more than declared, so a longer body shows (and the buffer then grows).
  let buf = new Uint8Array(declaredLength + 1);
  let total = 0;
  for (;;) {
    if (total === buf.length) {
      const next = new Uint8Array(Math.min(buf.length * 2, max + 1));
      next.set(buf);
      buf = next;
    }
    const { done, value } = await reader.read(buf.subarray(total));
    // A cancelled stream gives nothing back, not even the buffer the read took over.
    if (!value) throw new ApiError('body_missing', 'the upload was cut off before its end');
    // The read transfers the buffer: its bytes come back in `value`'s.
    buf = new Uint8Array(value.buffer);
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge(max);
    }
  }
  return buf.subarray(0, total);
}

/** Accepted request media types, for the 415 message and the OpenAPI document. */
export const ACCEPTED_TYPES = [...IMAGE_TYPES, MULTIPART];

/**
 * The image of a POST /classify request. Errors: 415 for other media types,
 * 413 past `maxBytes` (from Content-Length, or while reading), 411 for an
 * empty body, 400 for a malformed form or one without an `image` file.
 */
export async function readUpload(req: Request, maxBytes: number): Promise<Upload> {
  const type = mediaType(req.headers.get('content-type'));
  // `curl --data-binary @bird.jpg` sends form-urlencoded; generic clients send octet-stream
  // or nothing. Those bodies are accepted when their bytes are a JPEG, PNG or WebP.
  const sniff = type === '' || type === 'application/octet-stream' || type === 'application/x-www-form-urlencoded';
  const isImage = (IMAGE_TYPES as readonly string[]).includes(type);
  if (!isImage && !sniff && type !== MULTIPART) {
    throw new ApiError(
      'unsupported_media_type',
      `Content-Type ${type ? `"${type}"` : '(none)'} is not accepted: send ${IMAGE_TYPES.join(', ')} bytes, or ${MULTIPART} with a file field "${IMAGE_FIELD}"`,
    );
  }
  const declared = req.headers.get('content-length');
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  const bytes = await readCapped(req.body, maxBytes, declared === null ? undefined : Number(declared));
  if (bytes.byteLength === 0) throw new ApiError('body_missing', 'the request has no body: send an image');
  if (isImage) return { bytes, declaredType: type };
  if (sniff) {
    const detected = sniffImageType(bytes);
    if (!detected) {
      throw new ApiError(
        'unsupported_media_type',
        `the body (Content-Type ${type ? `"${type}"` : 'none'}) is not a JPEG, PNG or WebP image: send ${IMAGE_TYPES.join(', ')} bytes, or ${MULTIPART} with a file field "${IMAGE_FIELD}"`,
      );
    }
    return { bytes, declaredType: detected };
  }
  let form: FormData;
  try {
    form = await new Response(bytes as Uint8Array<ArrayBuffer>, {
      headers: { 'content-type': req.headers.get('content-type')! },
    }).formData();
  } catch {
    throw new ApiError('bad_multipart', 'the multipart/form-data body could not be parsed');
  }
  const field = form.get(IMAGE_FIELD);
  if (field === null || typeof field === 'string') {
    const keys = new Set<string>();
    form.forEach((_, k) => keys.add(`"${k}"`));
    const names = [...keys];
    throw new ApiError(
      'missing_image_field',
      `the form has no file field "${IMAGE_FIELD}"${names.length ? ` (fields: ${names.join(', ')})` : ''}`,
    );
  }
  const fileBytes = new Uint8Array(await field.arrayBuffer());
  if (fileBytes.byteLength === 0) throw new ApiError('body_missing', `the "${IMAGE_FIELD}" file is empty`);
  return { bytes: fileBytes, declaredType: mediaType(field.type) };
}

/** The image type from the file's magic bytes, or null. */
export function sniffImageType(b: Uint8Array): string | null {
  const format = sniffImageFormat(b);
  return format ? IMAGE_MEDIA_TYPES[format] : null;
}

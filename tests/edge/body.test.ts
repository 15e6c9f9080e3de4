/**
 * readCapped: the upload comes back byte for byte however it is chunked and
 * whatever Content-Length claimed, and a body past the cap is refused, from a
 * plain stream and from a byte stream (read with BYOB reads, as request bodies
 * are in workerd and Node).
 */
import { describe, expect, it } from 'vitest';
import { readCapped } from '../../edge/src/body.ts';
import { ApiError } from '../../edge/src/errors.ts';

const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31) % 251);

/** `data` as a stream of chunks of the given sizes (the last takes the rest); a byte stream with `bytes`. */
function stream(data: Uint8Array, sizes: number[], bytes = false): ReadableStream<Uint8Array> {
  const parts: Uint8Array[] = [];
  let o = 0;
  for (const n of sizes) {
    parts.push(data.slice(o, o + n));
    o += n;
  }
  if (o < data.length) parts.push(data.slice(o));
  const next = () => parts.shift() as Uint8Array<ArrayBuffer> | undefined;
  if (!bytes) {
    return new ReadableStream<Uint8Array>({
      pull(c) {
        const chunk = next();
        if (chunk) c.enqueue(chunk);
        else c.close();
      },
    });
  }
  return new ReadableStream({
    type: 'bytes',
    pull(c) {
      const chunk = next();
      if (chunk) return c.enqueue(chunk);
      c.close();
      // A byte stream closed under a pending BYOB read answers it with no bytes, as the spec asks.
      c.byobRequest?.respond(0);
    },
  }) as ReadableStream<Uint8Array>;
}

describe('readCapped', () => {
  it('returns the body exactly with a true, a short, a long or no declared length', async () => {
    for (const byteStream of [false, true]) {
      for (const declared of [1000, 400, 5000, undefined, Number.NaN]) {
        for (const sizes of [[1000], [1, 999], [300, 300, 300], [7, 13, 500]]) {
          const got = await readCapped(stream(bytes, sizes, byteStream), 2000, declared);
          const equal = Buffer.from(got).equals(Buffer.from(bytes));
          expect([byteStream, declared, sizes, equal]).toEqual([byteStream, declared, sizes, true]);
        }
      }
    }
  });

  it('refuses a body past the cap while reading it, whatever was declared', async () => {
    for (const byteStream of [false, true]) {
      for (const declared of [1000, 100, undefined]) {
        const err = await readCapped(stream(bytes, [300, 300, 300], byteStream), 999, declared).catch(
          (e: unknown) => e,
        );
        expect([byteStream, declared, err instanceof ApiError && err.code]).toEqual([
          byteStream,
          declared,
          'body_too_large',
        ]);
      }
    }
  });
});

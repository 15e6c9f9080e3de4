/**
 * readCapped: the upload comes back byte for byte however it is chunked and
 * whatever Content-Length claimed, and a body past the cap is refused.
 */
import { describe, expect, it } from 'vitest';
import { readCapped } from '../../edge/src/body.ts';
import { ApiError } from '../../edge/src/errors.ts';

const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31) % 251);

/** `data` as a stream of chunks of the given sizes (the last takes the rest). */
function stream(data: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  const parts: Uint8Array[] = [];
  let o = 0;
  for (const n of sizes) {
    parts.push(data.slice(o, o + n));
    o += n;
  }
  if (o < data.length) parts.push(data.slice(o));
  return new ReadableStream({
    pull(c) {
      const next = parts.shift();
      if (next) c.enqueue(next);
      else c.close();
    },
  });
}

describe('readCapped', () => {
  it('returns the body exactly with a true, a short, a long or no declared length', async () => {
    for (const declared of [1000, 400, 5000, undefined, Number.NaN]) {
      for (const sizes of [[1000], [1, 999], [300, 300, 300], [7, 13, 500]]) {
        const got = await readCapped(stream(bytes, sizes), 2000, declared);
        expect([declared, sizes, Buffer.from(got).equals(Buffer.from(bytes))]).toEqual([declared, sizes, true]);
      }
    }
  });

  it('refuses a body past the cap while reading it, whatever was declared', async () => {
    for (const declared of [1000, 100, undefined]) {
      const err = await readCapped(stream(bytes, [300, 300, 300]), 999, declared).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).code).toBe('body_too_large');
    }
  });
});

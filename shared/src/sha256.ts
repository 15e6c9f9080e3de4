/**
 * SHA-256 of bytes as lower-case hex, with WebCrypto: the same function in
 * Node, Workers and browsers, so the trainer, edge and widget agree on the
 * digests a bundle manifest lists.
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

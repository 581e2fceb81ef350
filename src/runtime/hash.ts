/** @file Content hashes with Web Crypto (Node ≥ 20 and browsers): keys for patched-model caches. */

/** Hex SHA-256 of some bytes and strings, in order. */
export async function sha256Hex(...parts: (Uint8Array | string)[]): Promise<string> {
  const enc = new TextEncoder();
  const chunks = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p));
  const total = chunks.reduce((n, c) => n + c.byteLength, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  const digest = await globalThis.crypto.subtle.digest('SHA-256', all);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** True in Node.js (not Deno or a browser). */
export const IS_NODE = typeof process !== 'undefined' && process.release?.name === 'node';

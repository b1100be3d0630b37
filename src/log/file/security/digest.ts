import { hash } from 'node:crypto';

/**
 * F-73: the digest of `bytes[start, end)` under `hashName` (`node:crypto`'s name: `sha256`, `blake2s256`), as a
 * one-byte-per-char string. Why a string: a Buffer result costs `hash` a slow allocation per call, more than
 * hashing a record takes.
 *
 * This module imports nothing else of Sluice's, so that the verifier's worker threads start quickly.
 */
export function digestOf(hashName: string, bytes: Uint8Array, start: number, end: number): string {
  // A plain view costs less to make than a Buffer `subarray`, and `hash` takes any typed array.
  return hash(hashName, new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start), 'binary');
}

/** Whether the digest of `bytes[start, end)` is stored right after them, at `end` (as in a chained frame, F-71). */
export function digestMatches(hashName: string, bytes: Uint8Array, start: number, end: number): boolean {
  const digest = digestOf(hashName, bytes, start, end);
  for (let i = 0; i < digest.length; i++) if (digest.charCodeAt(i) !== bytes[end + i]) return false;
  return true;
}

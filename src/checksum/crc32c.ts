import { crc32c as crc32cNative } from '@node-rs/crc32';

/**
 * CRC-32C (Castagnoli) of `bytes[start, end)`, as FORMAT.md specifies for every header and frame.
 *
 * Two implementations of one function: the native SIMD one (`@node-rs/crc32`) wins on long inputs, but each
 * call into it costs ~150 ns and a view object, which for a typical 200-byte record is more than the checksum
 * itself; slicing-by-8 in JavaScript checksums such a record in ~130 ns without allocating. Measured on this
 * project's benchmark machine; `test/checksum/crc32c.test.ts` proves both agree on every length across the
 * threshold.
 */
export function crc32c(bytes: Uint8Array, start: number, end: number): number {
  return end - start <= jsBytesMax ? crc32cJs(bytes, start, end) : crc32cNative(bytes.subarray(start, end));
}

/** A CRC-32C of `bytes[start, end)`, as `crc32c` computes it (or a `ChecksumWindow`'s, for its own buffer). */
export type Checksum = (bytes: Uint8Array, start: number, end: number) => number;

/** Inputs up to this size are checksummed in JavaScript. */
export const jsBytesMax = 384;

const polynomial = 0x82f63b78;

/** table[k * 256 + b]: the CRC of byte b followed by k zero bytes (slicing-by-8). Shared with crc32c.wat. */
export const crc32cTable: Int32Array = buildTable();
const table = crc32cTable;

function buildTable(): Int32Array {
  const result = new Int32Array(8 * 256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ polynomial : crc >>> 1;
    result[byte] = crc;
  }
  for (let byte = 0; byte < 256; byte++) {
    for (let slice = 1; slice < 8; slice++) {
      const previous = result[(slice - 1) * 256 + byte] as number;
      result[slice * 256 + byte] = (previous >>> 8) ^ (result[previous & 0xff] as number);
    }
  }
  return result;
}

/** The JavaScript half, exported for the test that checks it against the native one. */
export function crc32cJs(bytes: Uint8Array, start: number, end: number): number {
  const t = table;
  let crc = -1;
  let position = start;
  for (; position + 8 <= end; position += 8) {
    const word =
      crc ^
      ((bytes[position] as number) |
        ((bytes[position + 1] as number) << 8) |
        ((bytes[position + 2] as number) << 16) |
        ((bytes[position + 3] as number) << 24));
    crc =
      (t[1792 + (word & 0xff)] as number) ^
      (t[1536 + ((word >>> 8) & 0xff)] as number) ^
      (t[1280 + ((word >>> 16) & 0xff)] as number) ^
      (t[1024 + (word >>> 24)] as number) ^
      (t[768 + (bytes[position + 4] as number)] as number) ^
      (t[512 + (bytes[position + 5] as number)] as number) ^
      (t[256 + (bytes[position + 6] as number)] as number) ^
      (t[bytes[position + 7] as number] as number);
  }
  for (; position < end; position++) crc = (t[(crc ^ (bytes[position] as number)) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

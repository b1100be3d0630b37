import { crc32c } from '../../../checksum/crc32c.js';
import { chainBytes, digestBytes, flagBatchContinues, flagChained, flagDeleted, flagFiller, readU64 } from '../format.js';

/**
 * F-76: the filler compaction writes over a run of dropped records of a chained segment. It keeps, for every
 * record it covers, what that record's link was computed from — size (so its offset), time, key length, batch
 * flag and digest — in a table after its fixed part, and the last covered record's link in its chain bytes, so
 * the chain still verifies link by link across it while the records' bytes become a hole.
 *
 * | at | size | field |
 * |---|---|---|
 * | 28 | 4 | count of covered records (`0`: the frame is one record in its deleted form, F-62) |
 * | 32 + 48·i | 4 | size of covered record `i` |
 * | 36 + 48·i | 8 | its time |
 * | 44 + 48·i | 2 | its key length |
 * | 46 + 48·i | 1 | its batch-continues bit |
 * | 47 + 48·i | 1 | `0` |
 * | 48 + 48·i | 32 | its digest |
 */
export const coveredEntryBytes = 48;
const tableStart = 32;

/** A record a chained filler covers: what its link was computed from. */
export interface CoveredRecord {
  readonly size: number;
  readonly time: number;
  readonly keyLength: number;
  readonly batchContinues: boolean;
  readonly digest: Buffer;
  readonly link: Buffer;
}

/** True when one filler of `bytes` can hold the table of `count` records (else each stays in its deleted form). */
export function fillerFits(count: number, bytes: number): boolean {
  return tableStart + count * coveredEntryBytes + chainBytes + 4 <= bytes;
}

/**
 * Whether a frame flagged filler at `position` of `buffer`, `size` bytes long, has a table (F-76), rather than
 * being a record compaction left in its deleted form. Such a record's bytes 28-31 are zeros only when its key and
 * value took at least 4 bytes: with fewer, they hold the first bytes of its digest. But it is always smaller than
 * a filler with a table of one record can be (compaction writes a record in its deleted form only when the records
 * of its run, one or two, are too small for a table), so a frame of that size never has a table.
 */
export function hasTable(buffer: Buffer, position: number, size: number): boolean {
  return fillerFits(1, size) && coveredCount(buffer, position) > 0;
}

/**
 * The two written parts of a filler over `records` starting at `offset` (the rest of its bytes are zeros, left as
 * a hole): its head (fixed part and table) and its tail (chain bytes and trailing size), and its size.
 */
export function encodeChainedFiller(offset: number, records: readonly CoveredRecord[]): { head: Buffer; tail: Buffer; size: number } {
  const size = records.reduce((sum, record) => sum + record.size, 0);
  const frame = Buffer.alloc(size);
  frame.writeUInt32LE(size, 0);
  frame.writeUInt32LE(offset % 0x1_0000_0000, 8);
  frame.writeUInt32LE(Math.floor(offset / 0x1_0000_0000), 12);
  const last = records[records.length - 1] as CoveredRecord;
  frame[26] = flagDeleted | flagFiller | flagChained | (last.batchContinues ? flagBatchContinues : 0);
  frame.writeUInt32LE(records.length, 28);
  records.forEach((record, i) => {
    const at = tableStart + i * coveredEntryBytes;
    frame.writeUInt32LE(record.size, at);
    frame.writeUInt32LE(record.time % 0x1_0000_0000, at + 4);
    frame.writeUInt32LE(Math.floor(record.time / 0x1_0000_0000), at + 8);
    frame.writeUInt16LE(record.keyLength, at + 12);
    frame[at + 14] = record.batchContinues ? 1 : 0;
    record.digest.copy(frame, at + 16);
  });
  last.link.copy(frame, size - 4 - chainBytes + digestBytes);
  frame.writeUInt32LE(size, size - 4);
  frame.writeUInt32LE(crc32c(frame, 8, size), 4);
  const headBytes = tableStart + records.length * coveredEntryBytes;
  return { head: frame.subarray(0, headBytes), tail: frame.subarray(size - 4 - chainBytes), size };
}

/** The number of records a chained filler at `position` of `buffer` covers (0: a single record, deleted form). */
export function coveredCount(buffer: Buffer, position: number): number {
  return buffer.readUInt32LE(position + 28);
}

/**
 * Covered record `i` of the filler at `position` (its link is not stored: the verifier computes it). A time past
 * the largest safe integer reads as −1 (the verifier reports it).
 */
export function coveredAt(buffer: Buffer, position: number, i: number): Omit<CoveredRecord, 'link'> {
  const at = position + tableStart + i * coveredEntryBytes;
  return {
    size: buffer.readUInt32LE(at),
    time: readU64(buffer, at + 4),
    keyLength: buffer.readUInt16LE(at + 12),
    batchContinues: buffer[at + 14] === 1,
    digest: buffer.subarray(at + 16, at + 16 + digestBytes),
  };
}

/**
 * Whether covered record `i`'s flag bytes are as compaction writes them: its batch bit `0` or `1`, then `0`. The
 * link takes the bit as a boolean, so any other byte there would be a change nothing else finds.
 */
export function coveredFlagsValid(buffer: Buffer, position: number, i: number): boolean {
  const at = position + tableStart + i * coveredEntryBytes;
  return (buffer[at + 14] as number) <= 1 && buffer[at + 15] === 0;
}

import { closeSync, openSync } from 'node:fs';
import { crc32c } from '../../checksum/crc32c.js';
import { readFully, writeFully } from '../../io/positioned.js';
import { readU64, writeU64 } from '../file/format.js';

/**
 * The write intent of a flumelog-offset file (FORMAT.md O-10): `<file>.write`, 24 bytes, the file range of the
 * last write that held more than one record and crossed a page boundary.
 *
 * Why: Linux copies a `write()` into the page cache a page at a time and stops between pages when the process is
 * killed, so a kill can keep the first pages of a write. The format has no batch marker, so the whole records
 * of a batch cut short that way would read as a shorter batch. The intent names the write's range before it is
 * made; an open that finds the file ending strictly inside that range cuts it back to the range's start.
 *
 * | at | size | field |
 * |---|---|---|
 * | 0 | 8 | start: the file position the write began at (u64 LE) |
 * | 8 | 8 | end: the file position after it (u64 LE) |
 * | 16 | 4 | CRC-32C of bytes [0, 16) (u32 LE) |
 * | 20 | 4 | zero |
 */
export interface WriteIntent {
  readonly start: number;
  readonly end: number;
}

export const writeIntentBytes = 24;

/** The page size writes are copied by; a smaller one than the system's only makes the intent more often written. */
const pageBytes = 4096;

export function writeIntentPath(file: string): string {
  return `${file}.write`;
}

/** Whether a write of `records` records over `[start, end)` can be cut between its records by a kill. */
export function needsWriteIntent(records: number, start: number, end: number): boolean {
  return records > 1 && Math.floor(start / pageBytes) !== Math.floor((end - 1) / pageBytes);
}

/** Whether a file of `size` bytes ends strictly inside the intent's write: that write is partial (in progress, or cut short). */
export function endsInside(intent: WriteIntent | undefined, size: number): intent is WriteIntent {
  return intent !== undefined && intent.start < size && size < intent.end;
}

/** Records the intent in the open intent file `fd` (one write of 24 bytes at position 0, within one page). */
export function recordWriteIntent(fd: number, intent: WriteIntent): void {
  const bytes = Buffer.alloc(writeIntentBytes);
  writeU64(bytes, 0, intent.start);
  writeU64(bytes, 8, intent.end);
  bytes.writeUInt32LE(crc32c(bytes, 0, 16), 16);
  writeFully(fd, bytes, 0, writeIntentBytes, 0);
}

/**
 * The intent recorded beside `file`, or `undefined` when there is none, or its bytes are not a valid intent (a
 * torn intent write: the write it announced had not begun).
 */
export function readWriteIntent(file: string): WriteIntent | undefined {
  let fd: number;
  try {
    fd = openSync(writeIntentPath(file), 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const bytes = Buffer.alloc(writeIntentBytes);
    if (readFully(fd, bytes, 0, writeIntentBytes, 0) < writeIntentBytes) return undefined;
    if (bytes.readUInt32LE(16) !== crc32c(bytes, 0, 16) || bytes.readUInt32LE(20) !== 0) return undefined;
    const start = readU64(bytes, 0);
    const end = readU64(bytes, 8);
    if (start < 0 || end < 0 || end <= start) return undefined;
    return { start, end };
  } finally {
    closeSync(fd);
  }
}

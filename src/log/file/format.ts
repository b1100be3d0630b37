import { crc32c } from '../../checksum/crc32c.js';
import { keyBytesMax, valueBytesMax } from '../../limits.js';

/**
 * The byte layout of the native log's files, as specified in FORMAT.md (rule numbers cited as F-n). All
 * integers are little-endian; checksums are CRC-32C (Castagnoli).
 */

/** F-1: "SLUICELG", the first eight bytes of every segment file. */
export const segmentMagic = Buffer.from('SLUICELG', 'latin1');
/** F-2: the only segment format version this code writes and reads. */
export const formatVersion = 1;
/** F-3: every segment starts with a header of this size; records follow it back to back. */
export const headerBytes = 64;
/** F-10: the fixed part of a record frame (lengths, checksum, offset, time, key length, flags). */
export const frameOverheadBytes = 32;
/** F-12: the smallest and largest valid frame. */
export const frameBytesMin = frameOverheadBytes;
export const frameBytesMax = frameOverheadBytes + keyBytesMax + valueBytesMax;
/** F-11: flag bit: more records of the same batch follow this one. */
export const flagBatchContinues = 0x01;
/** F-11: the record was deleted: its key and value bytes are zeros, its framing and offset stay (F-62). */
export const flagDeleted = 0x02;
/** F-11: a filler frame of compaction (F-64), always with `flagDeleted`: it covers records already dropped. */
export const flagFiller = 0x04;
const flagsKnown = flagBatchContinues | flagDeleted | flagFiller;

/** Segment file names: the base offset, zero-padded to 20 digits, then `.seg` (F-4). */
export const segmentNamePattern = /^(\d{20})\.seg$/;

export function segmentName(base: number): string {
  return `${String(base).padStart(20, '0')}.seg`;
}

/** The size of the frame of a record with a key and value of these sizes. */
export function frameBytes(keyBytes: number, valueBytes: number): number {
  return frameOverheadBytes + keyBytes + valueBytes;
}

function writeU64(buffer: Buffer, position: number, value: number): void {
  buffer.writeUInt32LE(value % 0x1_0000_0000, position);
  buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), position + 4);
}

/** Reads a u64 that must fit a safe integer; returns -1 when it does not (the caller reports corruption). */
export function readU64(buffer: Buffer, position: number): number {
  const high = buffer.readUInt32LE(position + 4);
  if (high > 0x1f_ffff) return -1;
  return high * 0x1_0000_0000 + buffer.readUInt32LE(position);
}

export interface SegmentHeader {
  readonly version: number;
  readonly base: number;
  readonly createdTime: number;
}

/** Encodes a segment header (F-5). */
export function encodeHeader(base: number, createdTime: number): Buffer {
  const header = Buffer.alloc(headerBytes);
  segmentMagic.copy(header, 0);
  header.writeUInt16LE(formatVersion, 8);
  header.writeUInt16LE(headerBytes, 10);
  writeU64(header, 16, base);
  writeU64(header, 24, createdTime);
  header.writeUInt32LE(crc32c(header, 0, 60), 60);
  return header;
}

/** Decodes a segment header, or returns why it is invalid (F-6). */
export function decodeHeader(header: Buffer): SegmentHeader | string {
  if (header.length < headerBytes) return `the header is truncated (${header.length} of ${headerBytes} bytes)`;
  if (!header.subarray(0, 8).equals(segmentMagic)) return 'the file does not start with the segment magic';
  // The version comes before the checksum: a later version may lay out (and checksum) its header differently.
  const version = header.readUInt16LE(8);
  if (version !== formatVersion) return `format version ${version} is not supported (this code reads ${formatVersion})`;
  if (header.readUInt32LE(60) !== crc32c(header, 0, 60)) return 'the header checksum does not match';
  if (header.readUInt16LE(10) !== headerBytes) return 'the header size field is wrong';
  if (header.readUInt32LE(12) !== 0) return 'unknown header flags are set';
  for (let i = 32; i < 60; i++) if (header[i] !== 0) return 'reserved header bytes are not zero';
  const base = readU64(header, 16);
  const createdTime = readU64(header, 24);
  if (base < 0 || createdTime < 0) return 'the base offset or creation time is out of range';
  return { version, base, createdTime };
}

/**
 * Writes one record frame into `buffer` at `position` (F-10) and returns its size. The caller guarantees
 * capacity for the worst case (`frameBytes(key, 3 × string length)` for a string value). Returns -1 when the
 * encoded value is larger than `valueBytesMax` (nothing meaningful is left in the buffer then).
 */
export function writeFrame(
  buffer: Buffer,
  position: number,
  offset: number,
  time: number,
  key: Uint8Array | undefined,
  value: Uint8Array | string,
  batchContinues: boolean,
): number {
  const keyLength = key === undefined ? 0 : key.length;
  const valueStart = position + 28 + keyLength;
  let valueLength: number;
  if (typeof value === 'string') {
    valueLength = buffer.write(value, valueStart, 'utf8');
  } else {
    buffer.set(value, valueStart);
    valueLength = value.length;
  }
  if (valueLength > valueBytesMax) return -1;
  const size = frameOverheadBytes + keyLength + valueLength;
  buffer.writeUInt32LE(size, position);
  writeU64(buffer, position + 8, offset);
  writeU64(buffer, position + 16, time);
  buffer.writeUInt16LE(keyLength, position + 24);
  buffer[position + 26] = batchContinues ? flagBatchContinues : 0;
  buffer[position + 27] = 0;
  if (key !== undefined) buffer.set(key, position + 28);
  buffer.writeUInt32LE(size, position + size - 4);
  buffer.writeUInt32LE(crc32c(buffer, position + 8, position + size), position + 4);
  return size;
}

/** The parts of a valid frame, as positions within the buffer it was read from. */
export interface Frame {
  size: number;
  time: number;
  keyStart: number;
  keyLength: number;
  valueStart: number;
  valueLength: number;
  batchContinues: boolean;
  deleted: boolean;
  filler: boolean;
}

/**
 * Checks the frame that starts at `position` in `buffer` (which holds `available` valid bytes from there on)
 * against F-12 and returns its parts, or a reason string when it is not a valid frame for `offset`.
 * `needBytes` on the result tells the caller to read more and try again.
 */
export function parseFrame(
  buffer: Buffer,
  position: number,
  available: number,
  offset: number,
  into: Frame,
): Frame | string | { needBytes: number } {
  if (available < 4) return { needBytes: 4 };
  const size = u32(buffer, position);
  if (size < frameBytesMin || size > frameBytesMax) return `the frame length ${size} is out of bounds`;
  if (available < size) return { needBytes: size };
  if (u32(buffer, position + size - 4) !== size) return 'the lengths at both ends of the frame differ';
  if (u64(buffer, position + 8) !== offset) return 'the frame belongs to another offset';
  const keyLength = (buffer[position + 24] as number) | ((buffer[position + 25] as number) << 8);
  const flags = buffer[position + 26] as number;
  if ((flags & ~flagsKnown) !== 0 || buffer[position + 27] !== 0) return 'unknown frame flags are set';
  if (frameOverheadBytes + keyLength > size) return 'the key is longer than the frame';
  if (u32(buffer, position + 4) !== crc32c(buffer, position + 8, position + size)) {
    return checksumMismatch;
  }
  const time = u64(buffer, position + 16);
  if (time < 0) return 'the time is out of range';
  into.size = size;
  into.time = time;
  into.keyStart = position + 28;
  into.keyLength = keyLength;
  into.valueStart = position + 28 + keyLength;
  into.valueLength = size - frameOverheadBytes - keyLength;
  into.batchContinues = (flags & flagBatchContinues) !== 0;
  into.deleted = (flags & flagDeleted) !== 0;
  into.filler = (flags & flagFiller) !== 0;
  return into;
}

/** The reason `parseFrame` gives when only the checksum is wrong: the record is there, but damaged. */
export const checksumMismatch = 'the checksum does not match';

// Plain indexing instead of Buffer#readUInt32LE: this runs for every record of every scan, and skips the
// method's argument checks (the caller has already checked the bounds).
function u32(buffer: Buffer, position: number): number {
  return (
    ((buffer[position] as number) |
      ((buffer[position + 1] as number) << 8) |
      ((buffer[position + 2] as number) << 16)) +
    (buffer[position + 3] as number) * 0x100_0000
  );
}

/** A u64 that must fit a safe integer, or -1 (F-12 rule 6 and the offset rule). */
function u64(buffer: Buffer, position: number): number {
  const high = u32(buffer, position + 4);
  return high > 0x1f_ffff ? -1 : high * 0x1_0000_0000 + u32(buffer, position);
}

export function emptyFrame(): Frame {
  return {
    size: 0,
    time: 0,
    keyStart: 0,
    keyLength: 0,
    valueStart: 0,
    valueLength: 0,
    batchContinues: false,
    deleted: false,
    filler: false,
  };
}

/** The offset of the record at `position` of a segment whose first record has offset `base`. */
export function offsetAt(base: number, position: number): number {
  return base + position - headerBytes;
}

/** The file position of `offset` in the segment whose first record has offset `base`. */
export function positionOf(base: number, offset: number): number {
  return offset - base + headerBytes;
}



/**
 * Rewrites the frame of `size` bytes at `position` of `buffer` as deleted (F-62): key and value bytes zeroed, the
 * deleted flag set, the checksum recomputed. Lengths, offset, time and batch flag are kept, so framing, offsets
 * and batch boundaries are as before. The frame's framing must already have been checked (not its checksum: a
 * deletion that a crash tore is redone this way).
 */
export function eraseFrame(buffer: Buffer, position: number, size: number): void {
  buffer.fill(0, position + 28, position + size - 4);
  buffer[position + 26] = ((buffer[position + 26] as number) & (flagBatchContinues | flagFiller)) | flagDeleted;
  buffer.writeUInt32LE(crc32c(buffer, position + 8, position + size), position + 4);
}

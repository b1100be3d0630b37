import { crc32c, type Checksum } from '../../checksum/crc32c.js';
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
/** F-71: the bytes an encrypted frame carries after its fixed part: a 12-byte nonce and a 16-byte GCM tag. */
export const sealBytes = 28;
export const nonceBytes = 12;
export const tagBytes = 16;
/** F-72: the bytes a chained frame carries before its trailing size: the content digest, then the link. */
export const chainBytes = 64;
export const digestBytes = 32;
/** F-12: the smallest and largest valid frame. */
export const frameBytesMin = frameOverheadBytes;
export const frameBytesMax = frameOverheadBytes + sealBytes + chainBytes + keyBytesMax + valueBytesMax;
/** F-11: flag bit: more records of the same batch follow this one. */
export const flagBatchContinues = 0x01;
/** F-11: the record was deleted: its key and value bytes are zeros, its framing and offset stay (F-62). */
export const flagDeleted = 0x02;
/** F-11: a filler frame of compaction (F-64), always with `flagDeleted`: it covers records already dropped. */
export const flagFiller = 0x04;
/** F-71: the frame carries a nonce and tag, and its key and value bytes are ciphertext. */
export const flagEncrypted = 0x08;
/** F-72: the frame ends with a content digest and a link chaining it to the record before it. */
export const flagChained = 0x10;
const flagsKnown = flagBatchContinues | flagDeleted | flagFiller | flagEncrypted | flagChained;

/** F-70: segment header flag bits (bytes 12..15). */
export const headerFlagChained = 0x1;
export const headerFlagEncrypted = 0x2;

/**
 * F-70: the security fields of a segment header. All zero for a plain log, whose header is byte for byte the one
 * of earlier versions.
 */
export interface HeaderSecurity {
  /** F-72: 0 (not chained), 1 (SHA-256), 2 (BLAKE2s-256) or 3 (keyed: HMAC-SHA-256). */
  readonly chainAlgorithm: number;
  /** F-72: with a keyed chain, 8 bytes that identify the chain key (F-75's formula); else zeros. */
  readonly chainKeyCheck: Buffer;
  /** F-74: 0 (not encrypted) or 1 (AES-256-GCM). */
  readonly cipher: number;
  /** F-75: the id of the key this segment's records are encrypted with. */
  readonly keyId: number;
  /** F-75: 8 bytes that identify the key without revealing it. */
  readonly keyCheck: Buffer;
}

export const plainSecurity: HeaderSecurity = {
  chainAlgorithm: 0,
  chainKeyCheck: Buffer.alloc(8),
  cipher: 0,
  keyId: 0,
  keyCheck: Buffer.alloc(8),
};
export const chainAlgorithmsKnown = 3;
/** F-72: the keyed chain's id. */
export const chainAlgorithmKeyed = 3;
export const ciphersKnown = 1;

/** The frame flags every frame of a segment with these header fields carries (F-71, F-72). */
export function frameFlagsOf(security: HeaderSecurity): number {
  return (security.chainAlgorithm === 0 ? 0 : flagChained) | (security.cipher === 0 ? 0 : flagEncrypted);
}

/** Segment file names: the base offset, zero-padded to 20 digits, then `.seg` (F-4). */
export const segmentNamePattern = /^(\d{20})\.seg$/;

export function segmentName(base: number): string {
  return `${String(base).padStart(20, '0')}.seg`;
}

/** The size of the frame of a record with a key and value of these sizes. */
export function frameBytes(keyBytes: number, valueBytes: number, securityBytes = 0): number {
  return frameOverheadBytes + securityBytes + keyBytes + valueBytes;
}

/** Writes a safe integer as a u64 little-endian. */
export function writeU64(buffer: Buffer, position: number, value: number): void {
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
  readonly security: HeaderSecurity;
}

/** Encodes a segment header (F-5, F-70). */
export function encodeHeader(base: number, createdTime: number, security: HeaderSecurity = plainSecurity): Buffer {
  const header = Buffer.alloc(headerBytes);
  segmentMagic.copy(header, 0);
  header.writeUInt16LE(formatVersion, 8);
  header.writeUInt16LE(headerBytes, 10);
  header.writeUInt32LE(
    (security.chainAlgorithm === 0 ? 0 : headerFlagChained) | (security.cipher === 0 ? 0 : headerFlagEncrypted),
    12,
  );
  writeU64(header, 16, base);
  writeU64(header, 24, createdTime);
  header[32] = security.chainAlgorithm;
  header[33] = security.cipher;
  if (security.cipher !== 0) {
    header.writeUInt32LE(security.keyId, 36);
    security.keyCheck.copy(header, 40, 0, 8);
  }
  if (security.chainAlgorithm === chainAlgorithmKeyed) security.chainKeyCheck.copy(header, 48, 0, 8);
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
  const security = decodeSecurity(header);
  if (typeof security === 'string') return security;
  const base = readU64(header, 16);
  const createdTime = readU64(header, 24);
  if (base < 0 || createdTime < 0) return 'the base offset or creation time is out of range';
  return { version, base, createdTime, security };
}

/** F-70: the header flags and the fields they govern; every byte no flag governs must be zero. */
function decodeSecurity(header: Buffer): HeaderSecurity | string {
  const flags = header.readUInt32LE(12);
  if ((flags & ~(headerFlagChained | headerFlagEncrypted)) !== 0) return 'unknown header flags are set';
  const chained = (flags & headerFlagChained) !== 0;
  const encrypted = (flags & headerFlagEncrypted) !== 0;
  const chainAlgorithm = header[32] as number;
  const cipher = header[33] as number;
  if (chained !== (chainAlgorithm !== 0) || chainAlgorithm > chainAlgorithmsKnown) {
    return `the chain algorithm ${chainAlgorithm} does not agree with the header flags or is unknown`;
  }
  if (encrypted !== (cipher !== 0) || cipher > ciphersKnown) {
    return `the cipher ${cipher} does not agree with the header flags or is unknown`;
  }
  const keyed = chainAlgorithm === chainAlgorithmKeyed;
  for (let i = 34; i < 60; i++) {
    // Key id and key check value (36..47) are only there in an encrypted segment, the chain key's check value
    // (48..55) in a segment with a keyed chain.
    if (encrypted && i >= 36 && i < 48) continue;
    if (keyed && i >= 48 && i < 56) continue;
    if (header[i] !== 0) return 'reserved header bytes are not zero';
  }
  if (!chained && !encrypted) return plainSecurity;
  return {
    chainAlgorithm,
    chainKeyCheck: keyed ? Buffer.from(header.subarray(48, 56)) : Buffer.alloc(8),
    cipher,
    keyId: encrypted ? header.readUInt32LE(36) : 0,
    keyCheck: encrypted ? Buffer.from(header.subarray(40, 48)) : Buffer.alloc(8),
  };
}

/**
 * What turns a plain frame into an encrypted and/or chained one (F-71, F-72): `writeFrame` leaves room for it and
 * calls `seal` once every other byte is in place, before the checksum.
 */
export interface FrameSealer {
  /** The frame flags every frame it seals carries (`flagEncrypted`, `flagChained`). */
  readonly flags: number;
  /** Bytes it adds to a frame: `sealBytes` when encrypting, plus `chainBytes` when chaining. */
  readonly securityBytes: number;
  /** Encrypts the key and value in place and/or writes the digest and link of the frame at `position`. */
  seal(buffer: Buffer, position: number, size: number): void;
}

/**
 * Writes one record frame into `buffer` at `position` (F-10) and returns its size. The caller guarantees
 * capacity for the worst case (`frameBytes(key, 3 × string length, securityBytes)` for a string value). Returns -1
 * when the encoded value is larger than `valueBytesMax` (nothing meaningful is left in the buffer then).
 */
export function writeFrame(
  buffer: Buffer,
  position: number,
  offset: number,
  time: number,
  key: Uint8Array | undefined,
  value: Uint8Array | string,
  batchContinues: boolean,
  sealer?: FrameSealer,
): number {
  const keyLength = key === undefined ? 0 : key.length;
  const seal = sealer === undefined || (sealer.flags & flagEncrypted) === 0 ? 0 : sealBytes;
  const valueStart = position + 28 + seal + keyLength;
  let valueLength: number;
  if (typeof value === 'string') {
    valueLength = buffer.write(value, valueStart, 'utf8');
  } else {
    buffer.set(value, valueStart);
    valueLength = value.length;
  }
  if (valueLength > valueBytesMax) return -1;
  const size = frameOverheadBytes + (sealer === undefined ? 0 : sealer.securityBytes) + keyLength + valueLength;
  buffer.writeUInt32LE(size, position);
  writeU64(buffer, position + 8, offset);
  writeU64(buffer, position + 16, time);
  buffer.writeUInt16LE(keyLength, position + 24);
  buffer[position + 26] = (batchContinues ? flagBatchContinues : 0) | (sealer === undefined ? 0 : sealer.flags);
  buffer[position + 27] = 0;
  if (key !== undefined) buffer.set(key, position + 28 + seal);
  buffer.writeUInt32LE(size, position + size - 4);
  sealer?.seal(buffer, position, size);
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
  /** F-71: a nonce and tag follow the fixed part; key and value are ciphertext. */
  encrypted: boolean;
  /** F-72: digest and link end the frame, at `chainStart` (−1 when not chained). */
  chainStart: number;
}

/**
 * Checks the frame that starts at `position` in `buffer` (which holds `available` valid bytes from there on)
 * against F-12 and returns its parts, or a reason string when it is not a valid frame for `offset`.
 * `needBytes` on the result tells the caller to read more and try again. `checksum` computes rule 5's CRC-32C
 * of a range of `buffer` (a `ChecksumWindow`'s, when the buffer is one); `null` leaves rule 5 out, for the one
 * pass that proves the content by other means (the chain's digests, F-77).
 */
export function parseFrame(
  buffer: Buffer,
  position: number,
  available: number,
  offset: number,
  into: Frame,
  checksum: Checksum | null = crc32c,
): Frame | string | { needBytes: number } {
  if (available < 4) return { needBytes: 4 };
  const size = u32(buffer, position);
  if (size < frameBytesMin || size > frameBytesMax) return `the frame length ${size} is out of bounds`;
  // The offset field before the rest of the frame is asked for (a whole frame is at least 16 bytes, so it is
  // always checked): a random length must not make the caller read megabytes to learn that no frame starts here
  // (a scan over damage tries every position).
  if (available >= 16 && u64(buffer, position + 8) !== offset) return 'the frame belongs to another offset';
  if (available < size) return { needBytes: size };
  if (u32(buffer, position + size - 4) !== size) return 'the lengths at both ends of the frame differ';
  const keyLength = (buffer[position + 24] as number) | ((buffer[position + 25] as number) << 8);
  const flags = buffer[position + 26] as number;
  if ((flags & ~flagsKnown) !== 0 || buffer[position + 27] !== 0) return 'unknown frame flags are set';
  const seal = (flags & flagEncrypted) === 0 ? 0 : sealBytes;
  const chain = (flags & flagChained) === 0 ? 0 : chainBytes;
  if (frameOverheadBytes + seal + chain + keyLength > size) return 'the key is longer than the frame';
  if (checksum !== null && u32(buffer, position + 4) !== checksum(buffer, position + 8, position + size)) {
    return checksumMismatch;
  }
  // F-11: a filler is always a deleted frame; readers skip deleted frames only, so a filler that is not one would
  // hand its bytes out as a record. Its framing and checksum hold: a record is there, but not a valid one.
  if ((flags & (flagFiller | flagDeleted)) === flagFiller) return fillerNotDeleted;
  const time = u64(buffer, position + 16);
  if (time < 0) return 'the time is out of range';
  into.size = size;
  into.time = time;
  into.keyStart = position + 28 + seal;
  into.keyLength = keyLength;
  into.valueStart = position + 28 + seal + keyLength;
  into.valueLength = size - frameOverheadBytes - seal - chain - keyLength;
  into.batchContinues = (flags & flagBatchContinues) !== 0;
  into.deleted = (flags & flagDeleted) !== 0;
  into.filler = (flags & flagFiller) !== 0;
  into.encrypted = seal !== 0;
  into.chainStart = chain === 0 ? -1 : position + size - 4 - chainBytes;
  return into;
}

/** The reason `parseFrame` gives when only the checksum is wrong: the record is there, but damaged. */
export const checksumMismatch = 'the checksum does not match';

/** The reason `parseFrame` gives for a frame flagged filler but not deleted (F-11, F-12 rule 4): damage too. */
export const fillerNotDeleted = 'the frame is flagged filler but not deleted';

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
    encrypted: false,
    chainStart: -1,
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
 * Rewrites the frame of `size` bytes at `position` of `buffer` as deleted (F-62): key and value bytes zeroed (with
 * an encrypted frame's nonce and tag), the deleted flag set, the checksum recomputed. Lengths, offset, time, batch
 * flag and a chained frame's digest and link (F-76) are kept, so framing, offsets, batch boundaries and the chain
 * are as before. The frame's framing must already have been checked (not its checksum: a deletion that a crash
 * tore is redone this way).
 */
export function eraseFrame(buffer: Buffer, position: number, size: number): void {
  const flags = buffer[position + 26] as number;
  // A compaction filler is erased already; a chained one's table (F-76) must stay.
  if ((flags & flagFiller) !== 0) return;
  const chain = (flags & flagChained) === 0 ? 0 : chainBytes;
  buffer.fill(0, position + 28, position + size - 4 - chain);
  buffer[position + 26] = (flags & (flagBatchContinues | flagFiller | flagEncrypted | flagChained)) | flagDeleted;
  buffer.writeUInt32LE(crc32c(buffer, position + 8, position + size), position + 4);
}

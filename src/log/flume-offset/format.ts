/**
 * The flumelog-offset file format (FORMAT.md, "flumelog-offset files", rules O-1…O-9): one flat file of frames
 * `[L u32][payload][L u32][E]`, all big-endian, where `E` is the file length right after the frame written in
 * `W` bytes. `W` is 4, 6 or 8 for the 3.x format and 0 for the legacy (pre-3.0) format, which has no `E`.
 * Nothing in the file says which `W` it was written with: the opener must be told.
 */

/** The width in bytes of the end-of-record field: 4, 6, 8 (flumelog-offset 3.x) or 0 (the legacy format). */
export type OffsetWidth = 0 | 4 | 6 | 8;

/** The bytes a frame adds around its payload: two lengths and the end field. */
export function overheadBytes(width: OffsetWidth): number {
  return 8 + width;
}

/**
 * The largest end-of-record value a width can store, so the largest file: 2^32 − 1 for 4 bytes, 2^48 − 1 for 6,
 * 2^53 − 1 for 8 (JavaScript's safe integers, as upstream's 53-bit codec). The legacy format has no end field;
 * its offsets are bounded by the safe integers only.
 */
export function fileBytesLimit(width: OffsetWidth): number {
  if (width === 4) return 0xffff_ffff;
  if (width === 6) return 2 ** 48 - 1;
  return Number.MAX_SAFE_INTEGER;
}

/** Writes the `width`-byte big-endian end field at `at`. */
export function writeEnd(buffer: Buffer, value: number, at: number, width: OffsetWidth): void {
  if (width === 4) buffer.writeUInt32BE(value, at);
  else if (width === 6) buffer.writeUIntBE(value, at, 6);
  else if (width === 8) {
    buffer.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at);
    buffer.writeUInt32BE(value >>> 0, at + 4);
  }
}

/** Reads the `width`-byte big-endian end field at `at`; an 8-byte value past 2^53 comes back as `-1`. */
export function readEnd(buffer: Buffer, at: number, width: OffsetWidth): number {
  if (width === 4) return buffer.readUInt32BE(at);
  if (width === 6) return buffer.readUIntBE(at, 6);
  const high = buffer.readUInt32BE(at);
  if (high > 0x1f_ffff) return -1;
  return high * 0x1_0000_0000 + buffer.readUInt32BE(at + 4);
}

/**
 * Frames payloads back to back into `target` from `at`, the first one starting at file position `start`.
 * Returns the position after the last frame.
 */
export function writeFrame(
  target: Buffer,
  at: number,
  start: number,
  payload: Uint8Array | string,
  payloadBytes: number,
  width: OffsetWidth,
): number {
  target.writeUInt32BE(payloadBytes, at);
  if (typeof payload === 'string') target.write(payload, at + 4, payloadBytes, 'utf8');
  else target.set(payload, at + 4);
  target.writeUInt32BE(payloadBytes, at + 4 + payloadBytes);
  const frameBytes = payloadBytes + overheadBytes(width);
  writeEnd(target, start + frameBytes, at + 8 + payloadBytes, width);
  return at + frameBytes;
}

/**
 * Why the bytes at a position are not a whole valid frame, or `undefined` when they are. `buffer[at…]` holds
 * the bytes from file position `start`; `available` is how many of them there are. Checks (O-3): the length fits
 * in what is available, the two lengths agree, and the end field equals the frame's own end.
 */
export function frameProblem(
  buffer: Buffer,
  at: number,
  available: number,
  start: number,
  width: OffsetWidth,
  payloadBytesMax: number,
): string | undefined {
  if (available < 4) return 'the file ends inside a record length';
  const length = buffer.readUInt32BE(at);
  if (length > payloadBytesMax) return `the record length ${length} is larger than any record (${payloadBytesMax})`;
  // No writer makes an empty record (O-6); without an end field, any 8 zero bytes (a deleted record's payload)
  // would otherwise pass for one.
  if (length === 0 && width === 0) return 'an empty record, which only zeros make in this format';
  const frameBytes = length + overheadBytes(width);
  if (frameBytes > available) return `the record of length ${length} runs past the end of the file`;
  const trailing = buffer.readUInt32BE(at + 4 + length);
  if (trailing !== length) return `the record's two lengths disagree (${length} and ${trailing})`;
  if (width !== 0) {
    const end = readEnd(buffer, at + 8 + length, width);
    if (end !== start + frameBytes) return `the record's end field says ${end}, the record ends at ${start + frameBytes}`;
  }
  return undefined;
}

/** True when every byte of `buffer[start, end)` is zero: a deleted record's payload (O-6). */
export function isZeroed(buffer: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buffer[i] !== 0) return false;
  return true;
}

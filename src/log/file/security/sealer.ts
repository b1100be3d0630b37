import {
  chainBytes,
  digestBytes,
  flagBatchContinues,
  flagChained,
  flagDeleted,
  flagEncrypted,
  flagFiller,
  frameOverheadBytes,
  nonceBytes,
  sealBytes,
  type FrameSealer,
} from '../format.js';
import type { AesGcm } from './aes-gcm.js';
import type { ChainHasher } from './chain.js';

/**
 * Seals the frames a writer appends (F-71 … F-74): encrypts each record's key and value with AES-256-GCM under a
 * fresh random nonce, with the frame's offset, time and key length as associated data, and/or writes the content
 * digest of each frame and, in the last frame of each batch, the batch's link to the one before. Holds the link of
 * the last batch it sealed: the writer calls `mark` before a batch and `rewind` when the batch is refused, so a
 * refused batch leaves no trace in the chain.
 */
export class RecordSealer implements FrameSealer {
  readonly flags: number;
  readonly securityBytes: number;
  readonly #cipher: AesGcm | undefined;
  readonly #hasher: ChainHasher | undefined;
  #link: Buffer;

  constructor(cipher: AesGcm | undefined, hasher: ChainHasher | undefined, link: Buffer) {
    this.#cipher = cipher;
    this.#hasher = hasher;
    this.#link = link;
    this.flags = (cipher === undefined ? 0 : flagEncrypted) | (hasher === undefined ? 0 : flagChained);
    this.securityBytes = (cipher === undefined ? 0 : sealBytes) + (hasher === undefined ? 0 : chainBytes);
  }

  /** The link of the last batch sealed. */
  mark(): Buffer {
    return this.#link;
  }

  rewind(link: Buffer): void {
    this.#link = link;
    this.#hasher?.reset();
  }

  seal(buffer: Buffer, position: number, size: number): void {
    const chain = this.#hasher === undefined ? 0 : chainBytes;
    // GCM keeps lengths: the ciphertext takes the place of the key and value.
    const payloadEnd = position + size - 4 - chain;
    this.#cipher?.seal(buffer, position + 8, position + 26, position + 28, position + 28 + nonceBytes, position + 28 + sealBytes, payloadEnd);
    const hasher = this.#hasher;
    if (hasher !== undefined) {
      const chainStart = position + size - 4 - chainBytes;
      hasher.addSealed(this.#link, buffer, position, chainStart);
      if (((buffer[position + 26] as number) & flagBatchContinues) === 0) {
        this.#link = hasher.finish();
        buffer.set(this.#link, chainStart + digestBytes);
      } else {
        // F-71: only the last frame of a batch holds a link. A loop: 32 bytes cost less than a call to `fill`.
        for (let i = chainStart + digestBytes; i < chainStart + chainBytes; i++) buffer[i] = 0;
      }
    }
  }
}

/** Frames whose keystream one read-ahead makes, at most, and the longest text it covers (larger ones go alone). */
const readAheadFrames = 128;
const readAheadTextBytesMax = 4096;

/**
 * Opens the encrypted frames of a buffer read in order (a scan) faster: when a frame is opened right after the
 * one before it in the same buffer and the last read-ahead is used up, the keystream of the frames that follow it
 * there is made in one AES call.
 * Keystream is bound to its nonce, so a guess that goes wrong (frames deleted, a buffer refilled) costs time only.
 */
export class RecordOpener {
  #buffer: Buffer | undefined;
  #end = -1;
  readonly #nonceAts = new Int32Array(readAheadFrames);
  readonly #textBytes = new Int32Array(readAheadFrames);

  /**
   * Decrypts the key and value of the encrypted frame at `position` of `buffer` (F-74) into a new buffer: the
   * key's bytes, then the value's. Returns `undefined` when the tag does not verify (the frame was altered, or
   * moved to another offset: the caller reports `CORRUPT_RECORD`); never returns unauthenticated bytes.
   */
  open(cipher: AesGcm, buffer: Buffer, position: number, payloadEnd: number): Buffer | undefined {
    if (buffer === this.#buffer && position === this.#end && !cipher.readingAhead) this.#readAhead(cipher, buffer, position);
    this.#buffer = buffer;
    this.#end = position + buffer.readUInt32LE(position);
    return cipher.open(buffer, position + 8, position + 26, position + 28, position + 28 + nonceBytes, position + 28 + sealBytes, payloadEnd);
  }

  /** Walks the frames from `position` while their sizes fit the buffer, and has their keystream made. */
  #readAhead(cipher: AesGcm, buffer: Buffer, position: number): void {
    const smallest = frameOverheadBytes + sealBytes;
    let count = 0;
    let at = position;
    while (count < readAheadFrames && at + smallest <= buffer.length) {
      const size = buffer.readUInt32LE(at);
      if (size < smallest || at + size > buffer.length) break;
      const flags = buffer[at + 26] as number;
      if ((flags & (flagDeleted | flagFiller)) === 0 && (flags & flagEncrypted) !== 0) {
        const textBytes = size - smallest - ((flags & flagChained) === 0 ? 0 : chainBytes);
        if (textBytes < 0 || textBytes > readAheadTextBytesMax) break;
        this.#nonceAts[count] = at + 28;
        this.#textBytes[count] = textBytes;
        count++;
      }
      at += size;
    }
    if (count > 1) cipher.readAhead(buffer, this.#nonceAts, this.#textBytes, count);
  }
}

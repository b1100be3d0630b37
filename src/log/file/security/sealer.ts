import { createCipheriv, createDecipheriv, randomFillSync, type KeyObject } from 'node:crypto';
import {
  chainBytes,
  digestBytes,
  flagBatchContinues,
  flagChained,
  flagEncrypted,
  nonceBytes,
  sealBytes,
  tagBytes,
  type FrameSealer,
} from '../format.js';
import type { ChainHasher } from './chain.js';

/** Random nonces are drawn this many at a time: one CSPRNG call per 1024 records rather than one per record. */
const noncesPerFill = 1024;

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
  readonly #key: KeyObject | undefined;
  readonly #hasher: ChainHasher | undefined;
  #link: Buffer;
  readonly #nonces = Buffer.alloc(nonceBytes * noncesPerFill);
  #noncesUsed = noncesPerFill;

  constructor(key: KeyObject | undefined, hasher: ChainHasher | undefined, link: Buffer) {
    this.#key = key;
    this.#hasher = hasher;
    this.#link = link;
    this.flags = (key === undefined ? 0 : flagEncrypted) | (hasher === undefined ? 0 : flagChained);
    this.securityBytes = (key === undefined ? 0 : sealBytes) + (hasher === undefined ? 0 : chainBytes);
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
    if (this.#key !== undefined) this.#encrypt(buffer, position, position + size - 4 - chain);
    const hasher = this.#hasher;
    if (hasher !== undefined) {
      const chainStart = position + size - 4 - chainBytes;
      hasher.digestInto(buffer, position, size, buffer, chainStart);
      hasher.addFrame(this.#link, buffer, position, chainStart);
      if (((buffer[position + 26] as number) & flagBatchContinues) === 0) {
        this.#link = hasher.finish();
        buffer.set(this.#link, chainStart + digestBytes);
      } else {
        // F-71: only the last frame of a batch holds a link.
        buffer.fill(0, chainStart + digestBytes, chainStart + chainBytes);
      }
    }
  }

  #encrypt(buffer: Buffer, position: number, payloadEnd: number): void {
    if (this.#noncesUsed === noncesPerFill) {
      randomFillSync(this.#nonces);
      this.#noncesUsed = 0;
    }
    const nonceStart = this.#noncesUsed++ * nonceBytes;
    buffer.set(this.#nonces.subarray(nonceStart, nonceStart + nonceBytes), position + 28);
    const cipher = createCipheriv('aes-256-gcm', this.#key as KeyObject, buffer.subarray(position + 28, position + 28 + nonceBytes));
    cipher.setAAD(buffer.subarray(position + 8, position + 26));
    const payloadStart = position + 28 + sealBytes;
    // GCM keeps lengths: the ciphertext takes the place of the key and value.
    const ciphertext = cipher.update(buffer.subarray(payloadStart, payloadEnd));
    buffer.set(ciphertext, payloadStart);
    cipher.final();
    buffer.set(cipher.getAuthTag(), position + 28 + nonceBytes);
  }
}

/**
 * Decrypts the key and value of the encrypted frame at `position` of `buffer` (F-74) into a new buffer: the key's
 * bytes, then the value's. Returns `undefined` when the tag does not verify (the frame was altered, or moved to
 * another offset: the caller reports `CORRUPT_RECORD`); never returns unauthenticated bytes.
 */
export function openRecord(key: KeyObject, buffer: Buffer, position: number, payloadEnd: number): Buffer | undefined {
  const decipher = createDecipheriv('aes-256-gcm', key, buffer.subarray(position + 28, position + 28 + nonceBytes));
  decipher.setAuthTag(buffer.subarray(position + 28 + nonceBytes, position + 28 + nonceBytes + tagBytes));
  decipher.setAAD(buffer.subarray(position + 8, position + 26));
  const plaintext = decipher.update(buffer.subarray(position + 28 + sealBytes, payloadEnd));
  try {
    decipher.final();
  } catch {
    return undefined;
  }
  return plaintext;
}

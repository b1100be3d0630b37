import { hash } from 'node:crypto';
import { digestMatches, digestOf } from './digest.js';
import { digestBytes, flagBatchContinues, flagChained, flagEncrypted, writeU64 } from '../format.js';

/**
 * The hash functions a chain can use (F-72), by the id its segment headers record. `hmac-sha256` is the keyed
 * chain: links are HMACs under an application key, so that nobody without the key can recompute them.
 */
export type ChainAlgorithm = 'sha256' | 'blake2s256' | 'hmac-sha256';

export const chainAlgorithmIds: Readonly<Record<ChainAlgorithm, number>> = { sha256: 1, blake2s256: 2, 'hmac-sha256': 3 };
const chainAlgorithmNames: readonly ChainAlgorithm[] = ['sha256', 'blake2s256', 'hmac-sha256'];

/** The algorithm of a header's id (1 or 2, as `decodeHeader` accepts). */
export function chainAlgorithmOf(id: number): ChainAlgorithm {
  return chainAlgorithmNames[id - 1] as ChainAlgorithm;
}

export function checkChainAlgorithm(algorithm: unknown): asserts algorithm is ChainAlgorithm {
  if (algorithm !== 'sha256' && algorithm !== 'blake2s256' && algorithm !== 'hmac-sha256') {
    throw new TypeError(`chain must be 'sha256', 'blake2s256' or 'hmac-sha256', got ${String(algorithm)}`);
  }
}

/** F-73: the link before the first batch of a log: 32 zero bytes. */
export const genesisLink: Buffer = Buffer.alloc(digestBytes);

/** The block size of SHA-256, which HMAC-SHA-256 pads its key to. */
const hmacBlockBytes = 64;

/** What one record adds to its batch's link input (F-73): digest, offset + time + key length, link flags. */
const recordInputBytes = digestBytes + 18 + 1;

/**
 * F-73: the frame flags a link covers: the batch boundary and the frame's security (encrypted, chained), so that
 * a frame declared plain after the fact (its seal stripped) no longer links. Deletion and filler bits are not
 * covered: deleting and compacting keep links.
 */
export const linkFlagsMask = flagBatchContinues | flagEncrypted | flagChained;

/**
 * The hashes of a chain (F-73): the content digest of each frame's stored key and value, and one link per batch
 * that chains the digests and places of the batch's records to the link before it. One instance per writer or
 * verifier: it gathers the link input of the batch in progress (`add…`) until `finish` hashes it.
 *
 * Why per batch: a hash call into `node:crypto` costs far more than hashing a few hundred bytes, so a batch of
 * `n` records costs `n + 1` calls instead of `2n`; a batch of one is linked exactly as a single record.
 */
export class ChainHasher {
  readonly algorithm: ChainAlgorithm;
  /**
   * The link input of the batch in progress: for a keyed chain the HMAC's inner key block first (`#prefixBytes`),
   * then the previous link, then `recordInputBytes` per record.
   */
  #input: Buffer;
  /** `#input` for word-wide copies; the same bytes. */
  #inputView: DataView;
  /** The last frame buffer copied from, and a view of it (a walk reads many frames from one buffer). */
  #frameBuffer: Buffer | undefined;
  #frameView: DataView | undefined;
  #inputBytes = 0;
  readonly #prefixBytes: number;
  /** Keyed chains: the HMAC's outer key block followed by room for the inner hash. */
  readonly #outer: Buffer | undefined;
  /** The `node:crypto` hash of digests (and of links, unless keyed). */
  readonly digestHash: string;

  /** `key`: the 32-byte chain key of a keyed chain (`hmac-sha256`), required there and nowhere else. */
  constructor(algorithm: ChainAlgorithm, key?: Uint8Array) {
    this.algorithm = algorithm;
    this.digestHash = algorithm === 'hmac-sha256' ? 'sha256' : algorithm;
    if ((algorithm === 'hmac-sha256') !== (key !== undefined)) throw new TypeError('a chain key goes with the keyed chain only');
    this.#prefixBytes = key === undefined ? 0 : hmacBlockBytes;
    this.#input = Buffer.alloc(this.#prefixBytes + digestBytes + 64 * recordInputBytes);
    this.#inputView = viewOf(this.#input);
    if (key === undefined) {
      this.#outer = undefined;
    } else {
      // HMAC-SHA-256 (RFC 2104) of a key shorter than the block: the key padded with zeros, XORed with 0x36 in
      // front of the message for the inner hash and with 0x5c in front of the inner hash for the outer one. Two
      // one-shot hashes cost a third of a `createHmac` object per batch.
      if (key.length > hmacBlockBytes) throw new RangeError('a chain key is at most 64 bytes');
      this.#outer = Buffer.alloc(hmacBlockBytes + digestBytes);
      for (let i = 0; i < hmacBlockBytes; i++) {
        const byte = i < key.length ? (key[i] as number) : 0;
        this.#input[i] = byte ^ 0x36;
        this.#outer[i] = byte ^ 0x5c;
      }
    }
  }

  /**
   * F-73: whether the frame at `position` still has the digest stored at `digestAt` of the same buffer: that of
   * its bytes from `digestContentStart` up to the digest.
   */
  digestMatches(frame: Buffer, position: number, digestAt: number): boolean {
    return digestMatches(this.digestHash, frame, position + digestContentStart, digestAt);
  }

  /**
   * F-73, the write side: writes the digest of the frame at `position` (its stored bytes between its fixed part
   * and its chain bytes) at `digestAt`, then adds the frame to the batch in progress as `addFrame` does.
   */
  addSealed(previous: Uint8Array, frame: Buffer, position: number, digestAt: number): void {
    putDigest(frame, digestAt, digestOf(this.digestHash, frame, position + digestContentStart, digestAt));
    this.addFrame(previous, frame, position, digestAt);
  }

  /** Drops the batch in progress. */
  reset(): void {
    this.#inputBytes = 0;
  }

  /**
   * Adds the frame at `position` to the batch in progress, which starts from `previous` (read only for its first
   * record): its stored digest, bytes 8..25 (offset, time, key length) and flags & `linkFlagsMask`.
   */
  addFrame(previous: Uint8Array, frame: Buffer, position: number, digestAt: number): void {
    const at = this.#reserve(previous);
    if (frame !== this.#frameBuffer) {
      this.#frameBuffer = frame;
      this.#frameView = viewOf(frame);
    }
    // Four bytes a step through views: a per-record cost of the chain on both sides, and a third of a byte loop's
    // (which in turn costs less than calls into `Buffer.copy` for 50 bytes). Big-endian both ways copies bytes as
    // they are.
    const from = this.#frameView as DataView;
    const to = this.#inputView;
    for (let i = 0; i < digestBytes; i += 4) to.setUint32(at + i, from.getUint32(digestAt + i));
    // Bytes 8..25: offset, time (16 bytes), key length (2).
    for (let i = 0; i < 16; i += 4) to.setUint32(at + digestBytes + i, from.getUint32(position + 8 + i));
    to.setUint16(at + digestBytes + 16, from.getUint16(position + 24));
    this.#input[at + recordInputBytes - 1] = (frame[position + 26] as number) & linkFlagsMask;
  }

  /**
   * Adds a record a compaction filler covers (F-76), from the fields the filler keeps for it instead of its frame;
   * `securityFlags` are the frame flags of its segment's records (F-71).
   */
  addCovered(
    previous: Uint8Array,
    digest: Uint8Array,
    offset: number,
    time: number,
    keyLength: number,
    batchContinues: boolean,
    securityFlags: number,
  ): void {
    const at = this.#reserve(previous);
    const input = this.#input;
    input.set(digest, at);
    const fields = at + digestBytes;
    writeU64(input, fields, offset);
    writeU64(input, fields + 8, time);
    input.writeUInt16LE(keyLength, fields + 16);
    input[at + recordInputBytes - 1] = ((batchContinues ? flagBatchContinues : 0) | securityFlags) & linkFlagsMask;
  }

  /**
   * F-73: the link of the batch in progress, H(previous link ‖ its records' inputs) (an HMAC under the chain key
   * when keyed); starts the next batch.
   */
  finish(): Buffer {
    const input = this.#input.subarray(0, this.#inputBytes);
    this.#inputBytes = 0;
    const link = Buffer.allocUnsafe(digestBytes);
    const outer = this.#outer;
    if (outer === undefined) {
      putDigest(link, 0, hash(this.digestHash, input, 'binary'));
    } else {
      putDigest(outer, hmacBlockBytes, hash('sha256', input, 'binary'));
      putDigest(link, 0, hash('sha256', outer, 'binary'));
    }
    return link;
  }

  /** Room for one more record's input (the previous link first, when the batch starts); returns where it goes. */
  #reserve(previous: Uint8Array): number {
    if (this.#inputBytes === 0) {
      this.#input.set(previous, this.#prefixBytes);
      this.#inputBytes = this.#prefixBytes + digestBytes;
    }
    const at = this.#inputBytes;
    if (at + recordInputBytes > this.#input.length) {
      const larger = Buffer.alloc(this.#input.length * 2);
      this.#input.copy(larger, 0, 0, at);
      this.#input = larger;
      this.#inputView = viewOf(larger);
    }
    this.#inputBytes = at + recordInputBytes;
    return at;
  }
}

/** F-73: where in a chained frame the bytes its digest covers start (they end where the digest is). */
export const digestContentStart = 28;

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Writes a digest `hash` returned as a one-byte-per-char string (see `digestOf`) into `target` at `at`. */
function putDigest(target: Buffer, at: number, digest: string): void {
  for (let i = 0; i < digestBytes; i++) target[at + i] = digest.charCodeAt(i);
}

import { createHmac, hash } from 'node:crypto';
import { chainBytes, digestBytes, flagBatchContinues, flagChained, flagEncrypted } from '../format.js';

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

/** F-73: the link before the first record of a log: 32 zero bytes. */
export const genesisLink: Buffer = Buffer.alloc(digestBytes);

/** The bytes of a link input (F-73): previous link, digest, offset + time + key length, link flags. */
const linkInputBytes = digestBytes * 2 + 18 + 1;

/**
 * F-73: the frame flags a link covers: the batch boundary and the frame's security (encrypted, chained), so that
 * a frame declared plain after the fact (its seal stripped) no longer links. Deletion and filler bits are not
 * covered: deleting and compacting keep links.
 */
export const linkFlagsMask = flagBatchContinues | flagEncrypted | flagChained;

/**
 * The two hashes of a chained frame (F-73): the content digest of its stored key and value, and the link that
 * chains the digest and the record's place to the link before it. One instance per writer or verifier: the link
 * input is assembled in a buffer it reuses.
 */
export class ChainHasher {
  readonly algorithm: ChainAlgorithm;
  readonly #input = Buffer.alloc(linkInputBytes);
  /** The hash of digests (and of links, unless keyed). */
  readonly #hash: string;
  readonly #key: Buffer | undefined;

  /** `key`: the chain key of a keyed chain (`hmac-sha256`), required there and nowhere else. */
  constructor(algorithm: ChainAlgorithm, key?: Uint8Array) {
    this.algorithm = algorithm;
    this.#hash = algorithm === 'hmac-sha256' ? 'sha256' : algorithm;
    if ((algorithm === 'hmac-sha256') !== (key !== undefined)) throw new TypeError('a chain key goes with the keyed chain only');
    this.#key = key === undefined ? undefined : Buffer.from(key);
  }

  /** F-73: the digest of a frame's stored bytes between its fixed part and its chain bytes. */
  digest(frame: Buffer, position: number, size: number): Buffer {
    return hash(this.#hash, frame.subarray(position + 28, position + size - 4 - chainBytes), 'buffer');
  }

  /**
   * F-73: H(previous link ‖ digest ‖ frame bytes 8..25 (offset, time, key length) ‖ flags & `linkFlagsMask`).
   * Deleting a record (F-62) keeps all of these, so its link still verifies without its content.
   */
  link(previous: Uint8Array, digest: Uint8Array, frame: Buffer, position: number): Buffer {
    const input = this.#input;
    frame.copy(input, digestBytes * 2, position + 8, position + 26);
    input[linkInputBytes - 1] = (frame[position + 26] as number) & linkFlagsMask;
    return this.#linkOf(previous, digest);
  }

  /**
   * The link of a record a compaction filler covers (F-76): the same as `link`, from the fields the filler keeps
   * for it instead of its frame; `securityFlags` are the frame flags of its segment's records (F-71).
   */
  linkOfCovered(
    previous: Uint8Array,
    digest: Uint8Array,
    offset: number,
    time: number,
    keyLength: number,
    batchContinues: boolean,
    securityFlags: number,
  ): Buffer {
    const input = this.#input;
    const at = digestBytes * 2;
    input.writeUInt32LE(offset % 0x1_0000_0000, at);
    input.writeUInt32LE(Math.floor(offset / 0x1_0000_0000), at + 4);
    input.writeUInt32LE(time % 0x1_0000_0000, at + 8);
    input.writeUInt32LE(Math.floor(time / 0x1_0000_0000), at + 12);
    input.writeUInt16LE(keyLength, at + 16);
    input[linkInputBytes - 1] = ((batchContinues ? flagBatchContinues : 0) | securityFlags) & linkFlagsMask;
    return this.#linkOf(previous, digest);
  }

  #linkOf(previous: Uint8Array, digest: Uint8Array): Buffer {
    const input = this.#input;
    input.set(previous, 0);
    input.set(digest, digestBytes);
    if (this.#key !== undefined) return createHmac('sha256', this.#key).update(input).digest();
    return hash(this.#hash, input, 'buffer');
  }
}

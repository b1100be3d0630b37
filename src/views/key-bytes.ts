import { writeOrderedKey } from './ordered-key.js';
import type { IndexKey } from './index-key.js';

/** The scratch a key is encoded into: LMDB refuses keys over 1978 bytes long before this. */
const scratchBytes = 8192;
/** Parts of a key whose last string is remembered, and the longest string remembered. */
const rememberedParts = 4;
const rememberedChars = 512;

/**
 * Encodes index keys to the bytes `writeOrderedKey` makes of them (F-52: the bytes LMDB stores and sorts), faster
 * when a string part repeats from one key to the next (an author, a type, a feed): the bytes of the last string
 * of each of the first parts are kept and copied instead of being encoded again, character by character. The
 * bytes are the same either way: a string's encoding does not depend on where in a key it is.
 *
 * `encode` returns a view of a scratch buffer that the next call overwrites: LMDB copies a key when it is put.
 */
export class KeyBytes {
  readonly #scratch = Buffer.allocUnsafe(scratchBytes);
  /** Views of the scratch by length, so that a key costs no allocation. */
  readonly #views: Buffer[] = [];
  readonly #strings: Array<string | undefined> = new Array<string | undefined>(rememberedParts).fill(undefined);
  readonly #stringBytes: Buffer[] = Array.from({ length: rememberedParts }, () => Buffer.allocUnsafe(rememberedChars * 3 + 1));
  readonly #stringLengths = new Int32Array(rememberedParts);

  /** The bytes of `key`, or `undefined` when it may not fit the scratch (LMDB then encodes it, and judges it). */
  encode(key: IndexKey): Buffer | undefined {
    const scratch = this.#scratch;
    let end: number;
    if (typeof key === 'string') {
      this.#leading = 0;
      if (key.length > rememberedChars) return undefined;
      end = writeOrderedKey(key, scratch, 0);
    } else if (typeof key === 'number') {
      this.#leading = 0;
      end = writeOrderedKey(key, scratch, 0);
    } else {
      if (key.length > 64) return undefined;
      // The leading string parts this key shares with the last one are in the scratch already, where it wrote
      // them (every part before them being the same): they are not written again.
      let i = 0;
      end = 0;
      const leading = this.#leading;
      while (i < key.length && i < leading && key[i] === this.#leadingStrings[i]) end = this.#leadingEnds[i++] as number;
      let kept = i;
      for (; i < key.length; i++) {
        if (i > 0) scratch[end++] = 0;
        const part = key[i] as string | number;
        if (typeof part !== 'string') end = writeOrderedKey(part, scratch, end, true);
        // Three bytes a character at most: a part that could overflow the scratch is left to LMDB.
        else if (end + part.length * 3 + 16 > scratchBytes) {
          this.#leading = kept;
          return undefined;
        } else if (i < rememberedParts) {
          end = this.#string(part, i, end);
          // Leading parts only: ordered-binary writes a few bytes past the end of a number, over what follows it.
          if (i === kept) {
            this.#leadingStrings[i] = part;
            this.#leadingEnds[i] = end;
            kept++;
          }
        } else end = writeOrderedKey(part, scratch, end, true);
      }
      this.#leading = kept;
    }
    return (this.#views[end] ??= scratch.subarray(0, end));
  }

  /** How many leading string parts of the last key are in the scratch (`#leadingStrings`), and where they end. */
  #leading = 0;
  readonly #leadingStrings: Array<string | undefined> = new Array<string | undefined>(rememberedParts).fill(undefined);
  readonly #leadingEnds = new Int32Array(rememberedParts);

  /** Writes the string `part` of slot `slot` at `position` of the scratch; returns the end. */
  #string(part: string, slot: number, position: number): number {
    const bytes = this.#stringBytes[slot] as Buffer;
    if (part === this.#strings[slot]) {
      const length = this.#stringLengths[slot] as number;
      const scratch = this.#scratch;
      // A loop: for the few dozen bytes of a key part, cheaper than a call into Buffer#copy.
      for (let i = 0; i < length; i++) scratch[position + i] = bytes[i] as number;
      return position + length;
    }
    const end = writeOrderedKey(part, this.#scratch, position, true);
    if (part.length <= rememberedChars) {
      const scratch = this.#scratch;
      for (let i = position; i < end; i++) bytes[i - position] = scratch[i] as number;
      this.#strings[slot] = part;
      this.#stringLengths[slot] = end - position;
    }
    return end;
  }
}

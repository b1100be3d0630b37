import { writeKey } from 'ordered-binary';

type Key = Parameters<typeof writeKey>[0];

/**
 * The layout of the keys of index and query environments, stored in their `meta` beside the view's version: an
 * environment of another layout (none: written before this rule) is rebuilt, since its keys may not be where
 * reads now look for them. 2: long strings escaped (`writeOrderedKey`), `-0` stored as `0`, a one-part array as
 * its part, infinities in query indexes.
 */
export const keyLayout = 2;

/**
 * Writes an index key as `ordered-binary` bytes (F-52), with one difference: `ordered-binary` escapes the
 * characters U+0000 to U+0004 of a string (as byte 4 and the character) only in strings under 64 characters, and
 * writes longer ones as plain UTF-8, where such a character reads back as the end of the string (U+0000, the
 * separator of array parts) or as an escape. Such a key then decodes as another key, and a read that meets it
 * fails with `CORRUPT_VIEW`. Here long strings are escaped as short ones are, which `ordered-binary` reads back
 * as they were; every other key is written by `ordered-binary` itself, byte for byte.
 *
 * Same signature as `ordered-binary`'s `writeKey`: writes `key` at `position` of `target`, returns the end.
 */
export function writeOrderedKey(key: unknown, target: Uint8Array, position: number, inSequence?: boolean): number {
  if (typeof key === 'string') {
    return needsEscapes(key) ? writeEscapedString(key, target, position) : writeKey(key, target, position, inSequence);
  }
  if (Array.isArray(key) && key.some(needsEscapes)) {
    let end = position;
    for (let i = 0; i < key.length; i++) {
      // Parts are separated by a zero byte, as `ordered-binary` writes arrays.
      if (i > 0) target[end++] = 0;
      end = writeOrderedKey(key[i], target, end, true);
    }
    return end;
  }
  return writeKey(key as Key, target, position, inSequence);
}

/** Strings longer than this are written unescaped by `ordered-binary`. */
const escapedCharsMax = 63;
/** The characters up to U+0004 are those `ordered-binary` escapes (as this byte, then the character). */
const escapeByte = 4;
/** The byte `ordered-binary` puts before a string whose first character is under 28, to tell it from other types. */
const stringMark = 27;
const utf8 = new TextEncoder();

function needsEscapes(part: unknown): boolean {
  if (typeof part !== 'string' || part.length <= escapedCharsMax) return false;
  for (let i = 0; i < part.length; i++) if (part.charCodeAt(i) <= escapeByte) return true;
  return false;
}

function writeEscapedString(text: string, target: Uint8Array, position: number): number {
  let end = position;
  if (!(text.charCodeAt(0) >= 28)) target[end++] = stringMark;
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > escapeByte) continue;
    // An escaped character is never half of a surrogate pair, so the runs between them are whole text.
    end = writeUtf8(text.slice(from, i), target, end);
    target[end++] = escapeByte;
    target[end++] = code;
    from = i + 1;
  }
  return writeUtf8(text.slice(from), target, end);
}

function writeUtf8(text: string, target: Uint8Array, position: number): number {
  const { read, written } = utf8.encodeInto(text, target.subarray(position));
  // Two bytes short of the end at least: the caller writes an escape after a run.
  if (read < text.length || position + written > target.length - 2) throw new RangeError('the key does not fit the buffer it is written to');
  return position + written;
}

const keyScratch = Buffer.allocUnsafe(8192);
/** Bytes past a key's end that `ordered-binary` may write (a number's last word, a null terminator, checks). */
const keySlackBytes = 16;

/**
 * The bytes of `key` as `writeOrderedKey` writes them (a copy): what LMDB stores and sorts for it. A key of any
 * length: a read's bound or a key from `map` may be far longer than LMDB takes, and must still be compared (or
 * measured) rather than fail with a bare "does not fit".
 */
export function orderedKeyBytes(key: unknown): Buffer {
  const bound = encodedBytesBound(key) + keySlackBytes;
  // A whole number of words, of its own memory: ordered-binary views the buffer as 32-bit words, rounding its length up.
  const target = bound <= keyScratch.length ? keyScratch : Buffer.allocUnsafeSlow((bound + 7) & ~7);
  return Buffer.from(target.subarray(0, writeOrderedKey(key, target, 0)));
}

/**
 * At least the bytes `key` takes encoded (for an index key): three a UTF-16 unit of a string and one for its mark
 * (an escaped character takes two), nine a number, one more a part of an array for its separator.
 */
export function encodedBytesBound(key: unknown): number {
  if (typeof key === 'string') return 1 + 3 * key.length;
  if (Array.isArray(key)) {
    let bound = 0;
    for (const part of key) bound += 1 + encodedBytesBound(part);
    return bound;
  }
  if (ArrayBuffer.isView(key)) return key.byteLength;
  return 9;
}

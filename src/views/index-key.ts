import { checkReadOptions, type ReadOptions } from './view.js';
import type { Key } from 'lmdb';
import { encodedBytesBound, orderedKeyBytes } from './ordered-key.js';

/**
 * Index keys (flumeview-level semantics, FORMAT.md F-52): what a key may be, how it is stored, and how a range of
 * them is read. LMDB orders keys by their `ordered-binary` bytes (`writeOrderedKey`), so every comparison made
 * here outside LMDB is made on those bytes too.
 */

/** An index key: a string, a number, or an array of them (sorted element by element). */
export type IndexKey = string | number | ReadonlyArray<string | number>;

/** The range of an index read, on keys. Bounds compare as the keys sort (see `IndexKey`). */
export interface IndexRange extends ReadOptions {
  readonly gt?: IndexKey;
  readonly gte?: IndexKey;
  readonly lt?: IndexKey;
  readonly lte?: IndexKey;
  readonly reverse?: boolean;
  readonly limit?: number;
  /**
   * After the entries that exist, yield new ones in the range as records are indexed (in log order), until
   * `limit`, the consumer stops, or `signal` aborts (`ABORTED`). Cannot be combined with `reverse`.
   */
  readonly live?: boolean;
}

/**
 * A batch's entries as live reads get them: a key that a record's `map` listed twice (or as `'a'` and `['a']`,
 * one key to LMDB) is one entry, as it is in the index, not one per listing.
 */
export function liveEntries(keys: readonly IndexKey[], offsets: readonly number[]): Array<readonly [IndexKey, number]> {
  const entries: Array<readonly [IndexKey, number]> = [];
  let seen = new Set<string>();
  for (let i = 0; i < keys.length; i++) {
    const offset = offsets[i] as number;
    const key = keys[i] as IndexKey;
    const shared = offsets[i - 1] === offset || offsets[i + 1] === offset;
    if (shared) {
      // Only records with several keys pay for the comparison.
      if (offsets[i - 1] !== offset) seen = new Set();
      const bytes = orderedKeyBytes(key).toString('latin1');
      if (seen.has(bytes)) continue;
      seen.add(bytes);
    }
    entries.push([key, offset]);
  }
  return entries;
}

export function isKeyList(keys: IndexKey | readonly IndexKey[]): keys is readonly IndexKey[] {
  // A key may itself be an array of strings and numbers; a list of keys is an array whose items are keys. An empty
  // array is an empty list (no key at all), as a `map` that collects a record's keys into an array returns it.
  return Array.isArray(keys) && keys.every((key) => Array.isArray(key));
}

/**
 * Validates a key and returns it as it is stored: every -0 made 0 (ordered-binary writes -0 as its own number,
 * sorted after every other and decoded as another key, while JavaScript and `map` take -0 and 0 for one value),
 * and a one-part array as its part (which it reads back as; a number in an array takes more bytes than alone, so
 * `[1]` would otherwise be another key than the `1` it reads back as, and a read going on after it would start
 * in the wrong place).
 */
export function checkKey(key: IndexKey): IndexKey {
  if (Array.isArray(key) ? key.length > 0 && key.every(isKeyPart) : isKeyPart(key)) {
    const single = isArrayKey(key) && key.length === 1 ? (key[0] as string | number) : key;
    if (isArrayKey(single)) return single.some(isNegativeZero) ? single.map((part) => (isNegativeZero(part) ? 0 : part)) : single;
    return isNegativeZero(single) ? 0 : single;
  }
  throw new TypeError(`an index key is a string, a finite number, or a non-empty array of them: ${JSON.stringify(key)}`);
}

function isArrayKey(key: IndexKey): key is ReadonlyArray<string | number> {
  return Array.isArray(key);
}

function isNegativeZero(part: unknown): boolean {
  return part === 0 && Object.is(part, -0);
}

function isKeyPart(part: unknown): boolean {
  // The empty string is a key like any other (ordered-binary writes it as one escape byte, sorted first).
  return typeof part === 'string' || (typeof part === 'number' && Number.isFinite(part));
}

export interface RangeOptions {
  start?: Key;
  end?: Key;
  reverse: boolean;
  limit?: number;
  exclusiveStart?: boolean;
  inclusiveEnd?: boolean;
}

/** The bounds of a (forward) range as key bytes, for `inRange`. */
export interface ByteRange {
  readonly start: Buffer | undefined;
  readonly end: Buffer | undefined;
  readonly exclusiveStart: boolean;
  readonly inclusiveEnd: boolean;
}

export function byteRange(options: RangeOptions): ByteRange {
  return {
    start: options.start === undefined ? undefined : orderedKeyBytes(options.start),
    end: options.end === undefined ? undefined : orderedKeyBytes(options.end),
    exclusiveStart: options.exclusiveStart === true,
    inclusiveEnd: options.inclusiveEnd === true,
  };
}

/**
 * Whether a (forward) range holds `key`, compared as LMDB orders keys: by their bytes. Not with `compareKeys`,
 * which orders strings by UTF-16 code units, so that a live read would take or leave other keys than LMDB's range
 * of the same bounds (a character past U+FFFF sorts after U+E000…U+FFFF as bytes, before them as code units).
 */
export function inRange(key: IndexKey, range: ByteRange): boolean {
  const bytes = orderedKeyBytes(key);
  if (range.start !== undefined) {
    const order = Buffer.compare(bytes, range.start);
    if (order < 0 || (order === 0 && range.exclusiveStart)) return false;
  }
  if (range.end !== undefined) {
    const order = Buffer.compare(bytes, range.end);
    if (order > 0 || (order === 0 && !range.inclusiveEnd)) return false;
  }
  return true;
}

export function toRangeOptions(range: IndexRange): RangeOptions {
  if (typeof range !== 'object' || range === null) throw new TypeError('an index range must be an object');
  // The read options too, now: otherwise a bad signal or since would surface only at the first `next()`.
  checkReadOptions(range);
  const { gt, gte, lt, lte } = range;
  if (gt !== undefined && gte !== undefined) throw new TypeError('give gt or gte, not both');
  if (lt !== undefined && lte !== undefined) throw new TypeError('give lt or lte, not both');
  const checked = (bound: IndexKey | undefined): IndexKey | undefined => (bound === undefined ? undefined : checkKey(bound));
  // Checked, not coerced: `reverse: 'yes'` or `live: 1` read forward or once would look like a result.
  for (const name of ['reverse', 'live'] as const) {
    if (range[name] !== undefined && typeof range[name] !== 'boolean') throw new TypeError(`${name} must be a boolean`);
  }
  const reverse = range.reverse === true;
  const low = checked(gt ?? gte);
  const high = checked(lt ?? lte);
  const options: RangeOptions = { reverse };
  if (range.limit !== undefined) {
    if (typeof range.limit !== 'number') throw new TypeError('limit must be a number');
    if (!Number.isSafeInteger(range.limit) || range.limit < 0) throw new RangeError('limit must be a non-negative integer');
    options.limit = range.limit;
  }
  // LMDB walks from start to end; reversed, start is the high bound.
  const [start, end] = reverse ? [high, low] : [low, high];
  if (start !== undefined) options.start = start as Key;
  if (end !== undefined) options.end = end as Key;
  const startExclusive = reverse ? lt !== undefined : gt !== undefined;
  const endInclusive = reverse ? gte !== undefined : lte !== undefined;
  if (startExclusive) options.exclusiveStart = true;
  if (endInclusive) options.inclusiveEnd = true;
  return options;
}

/**
 * Throws a `RangeError` when `key` (a key `map` gave the record at `offset`) is longer, once encoded, than LMDB
 * keeps (`keyBytesMax`): the view then fails naming the record, instead of with LMDB's bare message. Most keys
 * are far shorter, which a bound on their length (at most three bytes a UTF-16 unit, nine a number) shows
 * without encoding them.
 */
export function checkKeyFits(key: IndexKey, keyBytesMax: number, offset: number): void {
  const bytes = keyBytes(key, keyBytesMax);
  if (bytes <= keyBytesMax) return;
  throw new RangeError(
    `the index key of the record at offset ${offset} takes ${bytes} bytes, over the ${keyBytesMax} an LMDB key can take: map it to a shorter key (a hash of it)`,
  );
}

/**
 * Whether `key` is short enough to be an LMDB key, so that LMDB may be asked for it: no stored key is longer, and
 * LMDB fails on a key that is (with a key it cannot even encode, as damage).
 */
export function keyFits(key: IndexKey, keyBytesMax: number): boolean {
  return keyBytes(key, keyBytesMax) <= keyBytesMax;
}

/** The bytes of `key` encoded, or a bound on them when that is at most `keyBytesMax` (no need to encode it then). */
function keyBytes(key: IndexKey, keyBytesMax: number): number {
  const bound = encodedBytesBound(key);
  return bound <= keyBytesMax ? bound : orderedKeyBytes(key).length;
}

/**
 * The range as LMDB can walk it: a bound longer than a key can be (`keyBytesMax`) is replaced by its first
 * `keyBytesMax` bytes P, which selects the same keys, since no stored key is longer than P: a key is below the
 * bound exactly when it is at most P, and above it exactly when it is above P. LMDB refuses a longer bound.
 */
export function fitRange(options: RangeOptions, keyBytesMax: number): RangeOptions {
  const fitted = { ...options };
  for (const end of ['start', 'end'] as const) {
    const bound = options[end];
    // Most bounds are short, which their length bound shows without encoding them (every ranged read comes here).
    if (bound === undefined || keyBytes(bound as IndexKey, keyBytesMax) <= keyBytesMax) continue;
    fitted[end] = orderedKeyBytes(bound).subarray(0, keyBytesMax);
    // Walking forward, the start is the low bound; reversed, the end is.
    const low = (end === 'start') !== options.reverse;
    if (end === 'start') fitted.exclusiveStart = low;
    else fitted.inclusiveEnd = !low;
  }
  return fitted;
}


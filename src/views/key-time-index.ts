import { hash } from 'node:crypto';
import type { LogRecord } from '../log/log.js';
import { IndexView, type IndexEntry } from './index-view.js';
import { checkReadOptions, type ReadOptions } from './view.js';

/** Offsets are below 2^53: the largest second element an entry key can have. */
const offsetCeiling = Number.MAX_SAFE_INTEGER;

/**
 * Record keys longer than this are indexed by their SHA-256: LMDB refuses entry keys over 1,978 bytes, and a record
 * key may have up to 65,535.
 */
const keyBytesIndexedWhole = 512;

/**
 * A record key as an index key: hex keeps the byte order of the key (klevdb compares keys as bytes). A long key
 * becomes `~` and the hex of its SHA-256 (`~` is no hex digit, so it never meets a short key's form); the index
 * only ever looks keys up whole, so their order does not matter there.
 */
function hexOf(key: Uint8Array | string): string {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key.buffer, key.byteOffset, key.length);
  return bytes.length <= keyBytesIndexedWhole ? bytes.toString('hex') : `~${hash('sha256', bytes, 'hex')}`;
}

export interface KeyIndexOptions<T> {
  /**
   * The key of a record. Default: the key stored with the record (`append(value, { key })`); records without
   * one are not indexed.
   */
  readonly keyOf?: (value: T, record: LogRecord<T>) => Uint8Array | string | undefined;
}

/**
 * Records by key (klevdb parity): the last record of a key, and all records of a key from an offset on. Built on
 * the index view with entry keys `[hex(key), offset]`, so every record of a key is kept, in offset order.
 */
export class KeyIndexView<T> extends IndexView<T> {
  constructor(version: number, options: KeyIndexOptions<T> = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('keyIndex options must be an object');
    const keyOf = options.keyOf ?? ((_value: T, record: LogRecord<T>) => record.key);
    if (typeof keyOf !== 'function') throw new TypeError('keyOf must be a function');
    super(version, (value, record) => {
      const key = keyOf(value, record);
      return key === undefined || key.length === 0 ? undefined : [hexOf(key), record.offset];
    });
  }

  /** The last record appended with `key`, or `undefined`. */
  async last(key: Uint8Array | string, options?: ReadOptions): Promise<LogRecord<T> | undefined> {
    const range = { ...bounds(key, 0), reverse: true, limit: 1 };
    for await (const record of this._readRecords({ ...checkReadOptions(options), ...range })) {
      return record;
    }
    return undefined;
  }

  /** Every record of `key` whose offset is at least `from`, oldest first. Arguments are checked at once. */
  records(key: Uint8Array | string, from = 0, options?: ReadOptions): AsyncIterable<LogRecord<T>> {
    return this._readRecords({ ...checkReadOptions(options), ...bounds(key, from) });
  }
}

function bounds(key: Uint8Array | string, from: number): { gte: [string, number]; lte: [string, number] } {
  if (typeof key !== 'string' && !(key instanceof Uint8Array)) throw new TypeError('key must be a string or a Uint8Array');
  if (typeof from !== 'number') throw new TypeError(`from must be a number, got ${typeof from}`);
  if (!Number.isSafeInteger(from) || from < 0) throw new RangeError('from must be a non-negative offset');
  const hex = hexOf(key);
  if (hex.length === 0) throw new TypeError('key must not be empty');
  return { gte: [hex, from], lte: [hex, offsetCeiling] };
}

/**
 * Records by time (klevdb parity): the first record at or after a time, and the records between two times.
 * Entry keys are `[time, offset]`, so records with the same time keep their log order.
 */
export class TimeIndexView<T> extends IndexView<T> {
  constructor(version: number) {
    super(version, (_value, record) => [record.time, record.offset]);
  }

  /** The first record whose time is at or after `time`, or `undefined`. */
  async firstAtOrAfter(time: number, options?: ReadOptions): Promise<IndexEntry<T> | undefined> {
    checkTime(time);
    for await (const entry of this.read({ ...checkReadOptions(options), gte: [time, 0], limit: 1 })) return entry;
    return undefined;
  }

  /** The records with `from ≤ time < to`, in time order (log order among equal times). */
  between(from: number, to: number, options?: ReadOptions): AsyncIterable<IndexEntry<T>> {
    checkTime(from);
    checkTime(to);
    return this.read({ ...checkReadOptions(options), gte: [from, 0], lt: [to, 0] });
  }
}

function checkTime(time: number): void {
  if (typeof time !== 'number') throw new TypeError(`a time is a number of milliseconds, got ${typeof time}`);
  if (!Number.isSafeInteger(time) || time < 0) throw new RangeError('a time is a non-negative integer of milliseconds');
}

/** `keyIndex(version, options?)`: see `KeyIndexView`. */
export function keyIndex<T>(version: number, options?: KeyIndexOptions<T>): KeyIndexView<T> {
  return new KeyIndexView(version, options);
}

/** `timeIndex(version)`: see `TimeIndexView`. */
export function timeIndex<T>(version: number): TimeIndexView<T> {
  return new TimeIndexView(version);
}

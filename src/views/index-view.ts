import { join } from 'node:path';
import { open as openLmdb, type Database, type Key, type RootDatabase } from 'lmdb';
import type { LogRecord } from '../log/log.js';
import type { ReadOptions, View, ViewContext } from './view.js';

/** An index key: a string, a number, or an array of them (sorted element by element). */
export type IndexKey = string | number | ReadonlyArray<string | number>;

/** One index entry as reads return it. */
export interface IndexEntry<T> {
  readonly key: IndexKey;
  readonly offset: number;
  readonly value: T;
}

/** The range of an index read, on keys. Bounds compare as the keys sort (see `IndexKey`). */
export interface IndexRange extends ReadOptions {
  readonly gt?: IndexKey;
  readonly gte?: IndexKey;
  readonly lt?: IndexKey;
  readonly lte?: IndexKey;
  readonly reverse?: boolean;
  readonly limit?: number;
}

const sinceKey = 'since';
const versionKey = 'version';

/**
 * A map from index keys to records (flumeview-level semantics): `map(value, record)` returns the keys of a
 * record (none, one, or an array of them); each key points at the last record that produced it. Entries live
 * in LMDB (`<view dir>/index.mdb`), written with the view's `since` and version in the same transaction, so the
 * index never claims records it has not stored. Reads are synchronous LMDB lookups followed by a log read.
 * Keys that must not collide across records include something unique, such as `[author, offset]`.
 */
export class IndexView<T> implements View<T> {
  readonly version: number;
  readonly #map: (value: T, record: LogRecord<T>) => IndexKey | readonly IndexKey[] | undefined;
  #context: ViewContext<T> | undefined;
  #root: RootDatabase | undefined;
  #entries: Database<number, Key> | undefined;
  #meta: Database<number, string> | undefined;

  constructor(version: number, map: (value: T, record: LogRecord<T>) => IndexKey | readonly IndexKey[] | undefined) {
    if (!Number.isSafeInteger(version)) throw new TypeError('version must be an integer');
    if (typeof map !== 'function') throw new TypeError('map must be a function');
    this.version = version;
    this.#map = map;
  }

  async open(context: ViewContext<T>): Promise<number> {
    this.#context = context;
    const root = openLmdb({ path: join(context.dir, 'index.mdb'), compression: false });
    this.#root = root;
    this.#entries = root.openDB<number, Key>({ name: 'entries', encoding: 'ordered-binary' });
    this.#meta = root.openDB<number, string>({ name: 'meta' });
    const version = this.#meta.get(versionKey);
    const since = this.#meta.get(sinceKey);
    if (version === undefined || since === undefined) return -1;
    if (version !== this.version) {
      context.report(`version ${version} on disk, ${this.version} in code: rebuilding`);
      return -1;
    }
    return since;
  }

  async apply(records: readonly LogRecord<T>[]): Promise<void> {
    const entries = this.#store();
    const meta = this.#meta as Database<number, string>;
    const keyed: Array<[IndexKey, number]> = [];
    for (const record of records) {
      const keys = this.#map(record.value, record);
      if (keys === undefined) continue;
      if (isKeyList(keys)) for (const key of keys) keyed.push([checkKey(key), record.offset]);
      else keyed.push([checkKey(keys), record.offset]);
    }
    const since = (records[records.length - 1] as LogRecord<T>).offset;
    // One transaction: the entries, the since they bring the index to, and the version they were made by.
    await entries.transaction(() => {
      for (const [key, offset] of keyed) entries.putSync(key as Key, offset);
      meta.putSync(sinceKey, since);
      meta.putSync(versionKey, this.version);
    });
  }

  /** Every apply already committed its entries with their since: a checkpoint only waits for the disk. */
  async checkpoint(): Promise<void> {
    await this.#root?.flushed;
  }

  async clear(): Promise<void> {
    await this.#store().clearAsync();
    await (this.#meta as Database<number, string>).clearAsync();
  }

  async close(): Promise<void> {
    await this.#root?.close();
    this.#root = undefined;
  }

  /** The entry of `key`, or `undefined`, once the view has caught up (see `ReadOptions`). */
  async get(key: IndexKey, options?: ReadOptions): Promise<IndexEntry<T> | undefined> {
    checkKey(key);
    const context = this.#ready();
    await context.ready(options);
    const offset = this.#store().get(key as Key);
    if (offset === undefined) return undefined;
    return { key, offset, value: await context.get(offset) };
  }

  /**
   * The entries within the range, in key order (or reverse), once the view has caught up. The range is
   * validated at once (`TypeError` / `RangeError`).
   */
  read(range: IndexRange = {}): AsyncIterable<IndexEntry<T>> {
    return this.#read(toRangeOptions(range), range);
  }

  async *#read(options: ReturnType<typeof toRangeOptions>, wait: ReadOptions): AsyncIterable<IndexEntry<T>> {
    const context = this.#ready();
    await context.ready(wait);
    // A snapshot of the keys first, so that the log reads between entries do not hold an LMDB read transaction.
    const found: Array<{ key: Key; offset: number }> = [];
    for (const { key, value } of this.#store().getRange(options)) found.push({ key, offset: value });
    for (const { key, offset } of found) yield { key: key as IndexKey, offset, value: await context.get(offset) };
  }

  /** The whole record at `offset` (value through the mapper, time, key), for views built on this one. */
  protected _getRecord(offset: number): Promise<LogRecord<T>> {
    return this.#ready().getRecord(offset);
  }

  #ready(): ViewContext<T> {
    if (this.#context === undefined) throw new TypeError('the view is not in use by a database');
    return this.#context;
  }

  #store(): Database<number, Key> {
    if (this.#entries === undefined) throw new TypeError('the index is not open');
    return this.#entries;
  }
}

function isKeyList(keys: IndexKey | readonly IndexKey[]): keys is readonly IndexKey[] {
  // A key may itself be an array of strings and numbers; a list of keys is an array whose items are keys.
  return Array.isArray(keys) && keys.length > 0 && keys.every((key) => Array.isArray(key));
}

function checkKey(key: IndexKey): IndexKey {
  const ok = (part: unknown): boolean =>
    (typeof part === 'string' && part.length > 0) || (typeof part === 'number' && Number.isFinite(part));
  if (Array.isArray(key) ? key.length > 0 && key.every(ok) : ok(key)) return key;
  throw new TypeError(`an index key is a non-empty string, a finite number, or an array of them: ${JSON.stringify(key)}`);
}

function toRangeOptions(range: IndexRange): { start?: Key; end?: Key; reverse: boolean; limit?: number; exclusiveStart?: boolean; inclusiveEnd?: boolean } {
  const { gt, gte, lt, lte } = range;
  if (gt !== undefined && gte !== undefined) throw new TypeError('give gt or gte, not both');
  if (lt !== undefined && lte !== undefined) throw new TypeError('give lt or lte, not both');
  for (const bound of [gt, gte, lt, lte]) if (bound !== undefined) checkKey(bound);
  const reverse = range.reverse === true;
  const low = gt ?? gte;
  const high = lt ?? lte;
  const options: { start?: Key; end?: Key; reverse: boolean; limit?: number; exclusiveStart?: boolean; inclusiveEnd?: boolean } = { reverse };
  if (range.limit !== undefined) {
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

/** `index(version, map)`: see `IndexView`. */
export function index<T>(
  version: number,
  map: (value: T, record: LogRecord<T>) => IndexKey | readonly IndexKey[] | undefined,
): IndexView<T> {
  return new IndexView(version, map);
}

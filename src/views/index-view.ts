import { join } from 'node:path';
import { closeViewStore, commitSync, committed, openViewStore, orderedBinaryKeys, type StoreDurability } from './lmdb-store.js';
import { type Database, type Key, type RootDatabase } from 'lmdb';
import { compareKeys } from 'ordered-binary';
import { keyLayout } from './ordered-key.js';
import { SluiceError } from '../errors.js';
import {
  checkPruneBound,
  checkStoredOffset,
  entriesBelow,
  isRecordGone,
  layoutKey,
  layoutProblem,
  prunedBelowKey,
  storedSinceProblem,
  storeRead,
} from './view-entries.js';
import { indexBatchRecords } from '../limits.js';
import { KeyBytes } from './key-bytes.js';
import type { LogRecord } from '../log/log.js';
import type { ReadOptions, View, ViewContext } from './view.js';
import {
  byteRange,
  checkKey,
  checkKeyFits,
  fitRange,
  inRange,
  isKeyList,
  keyFits,
  liveEntries,
  toRangeOptions,
  type IndexKey,
  type IndexRange,
  type RangeOptions,
} from './index-key.js';

export type { IndexKey, IndexRange } from './index-key.js';

/** One index entry as reads return it. */
export interface IndexEntry<T> {
  readonly key: IndexKey;
  readonly offset: number;
  readonly value: T;
}

/** Entries indexed by one batch, told to live reads. */
interface IndexedBatch {
  readonly since: number;
  readonly entries: ReadonlyArray<readonly [IndexKey, number]>;
}

const sinceKey = 'since';
/** LMDB's MDB_APPEND: refused (putSync → false, nothing written) unless the key sorts after every other. */
const appendPut = { append: true } as const;
/** After a refused append, plain puts before appends are tried again (see `IndexView.#put`). */
const appendRetryPuts = 256;
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
  readonly batchRecords = indexBatchRecords;
  readonly #map: (value: T, record: LogRecord<T>) => IndexKey | readonly IndexKey[] | undefined;
  #context: ViewContext<T> | undefined;
  #root: RootDatabase | undefined;
  /** A commit failed: the store is damaged or the disk full, and lmdb-js would never finish closing it. */
  #commitFailed = false;
  /** When commits reach the disk (F-99): at checkpoints, not one by one. */
  #durability: StoreDurability | undefined;
  #entries: Database<number, Key> | undefined;
  #meta: Database<number, string> | undefined;
  /** The last offset whose entries are committed. */
  #committed = -1;
  /** The longest key LMDB takes, in bytes (1,978 with its default page size). */
  #keyBytesMax = 1978;
  readonly #watchers = new Set<(batch: IndexedBatch) => void>();

  constructor(version: number, map: (value: T, record: LogRecord<T>) => IndexKey | readonly IndexKey[] | undefined) {
    if (!Number.isSafeInteger(version)) throw new TypeError('version must be an integer');
    if (typeof map !== 'function') throw new TypeError('map must be a function');
    this.version = version;
    this.#map = map;
  }

  async open(context: ViewContext<T>): Promise<number> {
    this.#context = context;
    const { root, probed, durability } = await openViewStore(
      join(context.dir, 'index.mdb'),
      (message) => context.report(message),
      (opened) => {
        const meta = opened.openDB<number, string>({ name: 'meta' });
        const entries = opened.openDB<number, Key>({ name: 'entries', encoding: 'ordered-binary', ...orderedBinaryKeys });
        return { entries, meta, version: meta.get(versionKey), since: meta.get(sinceKey), layout: meta.get(layoutKey) };
      },
      context.fileMode,
    );
    this.#root = root;
    this.#durability = durability;
    this.#entries = probed.entries;
    this.#meta = probed.meta;
    // lmdb-js's databases know it; its typings do not say so.
    this.#keyBytesMax = (probed.entries as unknown as { maxKeySize: number }).maxKeySize;
    const { version, since, layout } = probed;
    if (version === undefined || since === undefined) return -1;
    const stale =
      storedSinceProblem(since) ??
      (version !== this.version ? `version ${version} on disk, ${this.version} in code` : undefined) ??
      layoutProblem(layout);
    if (stale !== undefined) {
      context.report(`${stale}: rebuilding`);
      await this.clear();
      return -1;
    }
    this.#committed = since;
    return since;
  }

  async apply(records: readonly LogRecord<T>[]): Promise<void> {
    const entries = this.#store();
    const meta = this.#meta as Database<number, string>;
    const map = this.#map;
    // Keys and offsets in two flat arrays: a million records must not cost a million small tuples.
    const keys: IndexKey[] = [];
    const offsets: number[] = [];
    for (const record of records) {
      const produced = map(record.value, record);
      if (produced === undefined) continue;
      if (isKeyList(produced)) {
        for (const key of produced) {
          keys.push(this.#storable(key, record.offset));
          offsets.push(record.offset);
        }
      } else {
        keys.push(this.#storable(produced, record.offset));
        offsets.push(record.offset);
      }
    }
    const since = (records[records.length - 1] as LogRecord<T>).offset;
    // One transaction: the entries, the since they bring the index to, and the version they were made by.
    this.#durable().writeSync(() =>
      commitSync(this.#env(), () => {
        const bytes = this.#keyBytes;
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i] as IndexKey;
          this.#put(entries, bytes.encode(key) ?? key, offsets[i] as number);
        }
        meta.putSync(sinceKey, since);
        meta.putSync(versionKey, this.version);
        meta.putSync(layoutKey, keyLayout);
      }, () => (this.#commitFailed = true)),
    );
    this.#committed = since;
    if (this.#watchers.size === 0) return;
    const batch: IndexedBatch = { since, entries: liveEntries(keys, offsets) };
    for (const watcher of this.#watchers) watcher(batch);
  }

  /** A key `map` gave the record at `offset`, checked and made as it is stored (see `checkKey`, `checkKeyFits`). */
  #storable(given: IndexKey, offset: number): IndexKey {
    const key = checkKey(given);
    checkKeyFits(key, this.#keyBytesMax, offset);
    return key;
  }

  /**
   * Puts one entry. Keys that grow (a time, an author's sequence) go in with LMDB's append, which skips the
   * search and fills pages instead of splitting them; LMDB itself refuses an append of a key that is not past
   * the last one, and the entry is then put the ordinary way, so the index holds the same entries either way.
   * After a refusal, appends are tried again only every `appendRetryPuts` puts, so random keys pay little.
   */
  #put(entries: Database<number, Key>, key: IndexKey | Buffer, offset: number): void {
    if (this.#plainPuts === 0) {
      // The typings say void; lmdb-js returns whether the put happened (false: the append was refused).
      if ((entries.putSync(key as Key, offset, appendPut) as unknown) === true) return;
      this.#plainPuts = appendRetryPuts;
    } else {
      this.#plainPuts--;
    }
    entries.putSync(key as Key, offset);
  }

  /** Puts left before the next try of an append (see `#put`). */
  #plainPuts = 0;
  /** Keys are put as their bytes (the same `ordered-binary` bytes LMDB would make of them, made faster). */
  readonly #keyBytes = new KeyBytes();

  /**
   * Drops the entries of deleted records: their keys are computed again from their values (as `apply` did), and
   * an entry goes only if it still points at that record (a later record with the same key keeps its entry).
   */
  async delete(records: readonly LogRecord<T>[]): Promise<void> {
    const entries = this.#store();
    const doomed: Array<[IndexKey, number]> = [];
    for (const record of records) {
      const keys = this.#map(record.value, record);
      if (keys === undefined) continue;
      if (isKeyList(keys)) for (const key of keys) doomed.push([checkKey(key), record.offset]);
      else doomed.push([checkKey(keys), record.offset]);
    }
    this.#durable().writeSync(() =>
      commitSync(this.#env(), () => {
        for (const [key, offset] of doomed) if (entries.get(key as Key) === offset) entries.removeSync(key as Key);
      }, () => (this.#commitFailed = true)),
    );
  }

  /**
   * Drops the entries of records a trim dropped (below `below`); the reads skipped them already (`isRecordGone`),
   * so this frees their space rather than changing an answer. Each step's removals commit with the mark of the
   * prune done so far only at the end, so an interrupted prune starts again at its next call.
   */
  async prune(below: number): Promise<void> {
    checkPruneBound(below);
    const entries = this.#store();
    const meta = this.#meta as Database<number, string>;
    if (below <= (meta.get(prunedBelowKey) ?? 0)) return;
    for await (const doomed of entriesBelow(entries, below)) {
      this.#durable().writeSync(() =>
        commitSync(this.#env(), () => {
          for (const key of doomed) entries.removeSync(key);
        }, () => (this.#commitFailed = true)),
      );
    }
    this.#durable().writeSync(() =>
      commitSync(this.#env(), () => meta.putSync(prunedBelowKey, below), () => (this.#commitFailed = true)),
    );
  }

  /** Every apply already committed its entries with their since: a checkpoint makes those commits durable (F-99). */
  async checkpoint(): Promise<void> {
    await committed(this.#durable().sync(), () => (this.#commitFailed = true));
  }

  /** Entries and meta go in one transaction: a crash cannot leave a since that points at missing entries. */
  async clear(): Promise<void> {
    const entries = this.#store();
    const meta = this.#meta as Database<number, string>;
    this.#durable().writeSync(() =>
      commitSync(this.#env(), () => {
        entries.clearSync();
        meta.clearSync();
      }, () => (this.#commitFailed = true)),
    );
    this.#committed = -1;
  }

  #env(): RootDatabase {
    if (this.#root === undefined) throw new TypeError('the index is not open');
    return this.#root;
  }

  #durable(): StoreDurability {
    if (this.#durability === undefined) throw new TypeError('the view is not open');
    return this.#durability;
  }

  async close(): Promise<void> {
    await closeViewStore(this.#root, this.#commitFailed);
    this.#root = undefined;
  }

  /** The entry of `key`, or `undefined`, once the view has caught up (see `ReadOptions`). */
  async get(given: IndexKey, options?: ReadOptions): Promise<IndexEntry<T> | undefined> {
    const key = checkKey(given);
    const context = this.#ready();
    await context.ready(options);
    // A key longer than LMDB takes is in no entry, and LMDB would fail on it (as on damage: `CORRUPT_VIEW`).
    if (!keyFits(key, this.#keyBytesMax)) return undefined;
    const offset = storeRead(this.#file(), () => this.#store().get(key as Key));
    if (offset === undefined) return undefined;
    const record = await readUnlessGone(this.#record(key, checkStoredOffset(offset, this.#file())));
    return record === goneRecord ? undefined : { key, offset, value: record.value };
  }

  /**
   * The entries within the range, in key order (or reverse), once the view has caught up. The range is
   * validated at once (`TypeError` / `RangeError`).
   */
  read(range: IndexRange = {}): AsyncIterable<IndexEntry<T>> {
    return this.#read(range, async (key, offset) => ({ key, offset, value: (await this.#record(key, offset)).value }));
  }

  /** As `read`, yielding the whole records (value, time, key) of the entries, for views built on this one. */
  protected _readRecords(range: IndexRange): AsyncIterable<LogRecord<T>> {
    return this.#read(range, (key, offset) => this.#record(key, offset));
  }

  /** Validates the range at once, then reads it, turning each entry into an item with one log read. */
  #read<E>(range: IndexRange, item: (key: IndexKey, offset: number) => Promise<E>): AsyncIterable<E> {
    const options = toRangeOptions(range);
    if (range.live === true && options.reverse) throw new TypeError('a live read cannot be reversed');
    return this.#scan(options, range, item);
  }

  async *#scan<E>(
    options: RangeOptions,
    range: IndexRange,
    item: (key: IndexKey, offset: number) => Promise<E>,
  ): AsyncIterable<E> {
    const context = this.#ready();
    const queue: IndexedBatch[] = [];
    let wake: (() => void) | undefined;
    const watcher = (batch: IndexedBatch): void => {
      queue.push(batch);
      wake?.();
    };
    // Watch before the snapshot, so nothing indexed in between is missed; batches the snapshot already holds
    // are skipped by their since.
    if (range.live === true) this.#watchers.add(watcher);
    const signal = range.signal;
    const stopped = context.stopped;
    const onAbort = (): void => wake?.();
    signal?.addEventListener('abort', onAbort);
    stopped.addEventListener('abort', onAbort);
    try {
      await context.ready(range);
      const walked = fitRange(options, this.#keyBytesMax);
      // The keys are read a page at a time, so that the log reads between entries do not hold an LMDB read
      // transaction. `limit` counts the entries handed out: an entry of a record no longer in the log is skipped
      // without counting, and the next page makes up for it. A page goes on after the last key of the one before,
      // not after as many entries, which entries put or removed meanwhile would shift (an entry read twice, or
      // passed over). A live read leaves the entries indexed after its first page to the batches it is told of.
      let covered = this.#committed;
      let remaining = options.limit ?? Infinity;
      let after: Key | undefined;
      while (remaining > 0) {
        const found: Array<{ key: Key; offset: number }> = [];
        // A key read back is written to the same bytes again (`checkKey` stores no one-part array, whose number
        // part would read back as a number of shorter bytes), so a page can start right after it.
        const page = {
          ...walked,
          ...(after === undefined ? {} : { start: after, exclusiveStart: true }),
          ...(options.limit === undefined ? {} : { limit: remaining }),
        };
        storeRead(this.#file(), () => {
          for (const { key, value } of this.#store().getRange(page)) found.push({ key, offset: checkStoredOffset(value, this.#file()) });
        });
        const full = found.length === remaining;
        for (const { key, offset } of found) {
          after = key;
          if (range.live === true && offset > covered) continue;
          const entry = await readUnlessGone(item(key as IndexKey, offset));
          if (entry === goneRecord) continue;
          remaining--;
          yield entry;
        }
        if (!full) break;
      }
      if (range.live !== true) return;
      const bounds = byteRange(options);
      while (remaining > 0) {
        if (signal?.aborted === true) throw new SluiceError('ABORTED', 'the read was aborted', { cause: signal.reason });
        if (stopped.aborted) throw stopped.reason as Error;
        const batch = queue.shift();
        if (batch === undefined) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        // Batches (or, after a rebuild, records) the read has already covered are skipped.
        if (batch.since <= covered) continue;
        for (const [key, offset] of batch.entries) {
          if (remaining === 0 || offset <= covered || !inRange(key, bounds)) continue;
          const entry = await readUnlessGone(item(key, offset));
          if (entry === goneRecord) continue;
          remaining--;
          yield entry;
        }
        covered = batch.since;
      }
    } finally {
      this.#watchers.delete(watcher);
      signal?.removeEventListener('abort', onAbort);
      stopped.removeEventListener('abort', onAbort);
    }
  }

  /**
   * The record an entry points at, once its key is proven to be one `map` gives that record: LMDB has no page
   * checksums, so an entry a damaged file garbled (another record's offset) fails with `CORRUPT_VIEW` instead of
   * answering with the wrong record. `map` must be pure (as for any rebuild).
   */
  async #record(key: IndexKey, offset: number): Promise<LogRecord<T>> {
    const record = await this.#ready().getRecord(offset);
    const keys = this.#map(record.value, record);
    const produced = keys === undefined ? [] : isKeyList(keys) ? keys : [keys];
    if (!produced.some((candidate) => compareKeys(candidate as Key, key as Key) === 0)) {
      throw new SluiceError('CORRUPT_VIEW', `the index entry ${JSON.stringify(key)} points at offset ${offset}, a record without that key: rebuild the view`, {
        file: this.#file(),
        offset,
      });
    }
    return record;
  }

  #file(): string {
    return join(this.#ready().dir, 'index.mdb');
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

/**
 * Marks an entry whose record is gone from the log: deleted (a crash between the log's deletion and the view's
 * left the entry behind), trimmed away with its segment (a trim does not visit the views), or dropped by a
 * compaction (which does not either).
 */
const goneRecord = Symbol('gone record');

async function readUnlessGone<E>(read: Promise<E>): Promise<E | typeof goneRecord> {
  try {
    return await read;
  } catch (error) {
    if (isRecordGone(error)) return goneRecord;
    throw error;
  }
}

/** `index(version, map)`: see `IndexView`. */
export function index<T>(
  version: number,
  map: (value: T, record: LogRecord<T>) => IndexKey | readonly IndexKey[] | undefined,
): IndexView<T> {
  return new IndexView(version, map);
}

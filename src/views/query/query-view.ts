import { join } from 'node:path';
import { checkPruneBound, checkStoredOffset, entriesBelow, isRecordGone, layoutKey, layoutProblem, prunedBelowKey, storedSinceProblem, storeRead } from '../view-entries.js';
import { keyLayout } from '../ordered-key.js';
import { closeViewStore, committed, handleCommitFailure, openViewStore, orderedBinaryKeys, type StoreDurability } from '../lmdb-store.js';
import { type Database, type Key, type RootDatabase } from 'lmdb';
import { SluiceError } from '../../errors.js';
import { indexBatchRecords } from '../../limits.js';
import type { LogRecord } from '../../log/log.js';
import { checkReadOptions, type ReadOptions, type View, type ViewContext } from '../view.js';
import { chain, compileStages, type CompiledStage, type QueryFilter, type QueryStage, type Sink } from './compile.js';
import { checkIndexes, choosePlan, entryKey, type KeyBounds, type QueryIndex, type QueryPlan } from './plan.js';
import { describe, isPlainObject } from './values.js';

/** What a query reads: every record as `{ offset, time, key, value }`; `key` is the record's key as UTF-8 text. */
export interface QueryRecord<T> {
  readonly offset: number;
  readonly time: number;
  readonly key: string | undefined;
  readonly value: T;
}

/** A query: stages applied in order to the records, in log order (newest first with `reverse`). */
export interface Query {
  /** `$filter`, `$map`, `$reduce` and `$sort` stages, in any number and order. Default: none (every record). */
  readonly query?: readonly QueryStage[];
  /** Read the records newest first (results then come in that order unless a `$sort` or `$reduce` reorders). */
  readonly reverse?: boolean;
  /** The most results to yield. */
  readonly limit?: number;
  /**
   * After the results over the records that exist, yield those of each new record as it is indexed, in log
   * order, until `limit`, the consumer stops, `signal` aborts (`ABORTED`) or the view closes (`VIEW_CLOSED`).
   * Only for queries of `$filter` and `$map` stages (a `$reduce` or `$sort` needs every record before its first
   * result); cannot be combined with `reverse`.
   */
  readonly live?: boolean;
}

export interface QueryViewOptions {
  /**
   * The composite indexes to maintain, e.g. `{ name: 'author-time', value: [['value', 'author'], ['value', 'time']] }`.
   * Changing them rebuilds the view (as a new version does). Default: none (every read scans the log).
   */
  readonly indexes?: readonly QueryIndex[];
}

interface CompiledQuery {
  readonly stages: readonly CompiledStage[];
  readonly plan: QueryPlan;
  readonly bounds: KeyBounds | undefined;
  readonly reverse: boolean;
  readonly limit: number;
  readonly live: boolean;
}

/** The records one apply committed, told to live reads; `undefined`: the view closed. */
interface AppliedBatch<T> {
  readonly since: number;
  readonly records: readonly LogRecord<T>[];
}
type Watcher<T> = (batch: AppliedBatch<T> | undefined) => void;

const queryKeys = new Set(['query', 'reverse', 'limit', 'live']);
const versionKey = 'version';
const sinceKey = 'since';
const indexesKey = 'indexes';
// A key is the record's bytes as text: a leading U+FEFF is part of it, not a byte-order mark to drop.
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

function toQueryRecord<T>(record: LogRecord<T>): QueryRecord<T> {
  return {
    offset: record.offset,
    time: record.time,
    key: record.key === undefined ? undefined : utf8.decode(record.key),
    value: record.value,
  };
}

/**
 * Queries over the log in the manner of flumeview-query (map-filter-reduce): a read is a list of `$filter`,
 * `$map`, `$reduce` and `$sort` stages; the view keeps the declared composite indexes in step with the log and
 * serves a read's leading `$filter` from the best of them (`explain` shows which), or scans the log when none
 * fits. The index only narrows what is read: every record read is matched against the whole filter, so results
 * never depend on the plan, and they come in log order (or reverse) whichever plan ran.
 *
 * Storage: one LMDB environment (`<view dir>/query.mdb`) holds the entries of every index, keyed
 * `[index name, ...field values, offset]` (the offset makes every record's key unique, so each is kept), next to
 * the view's `since`, version and index declarations. One store rather than one `IndexView` per index: an
 * apply writes the entries of all indexes and the `since` they reach in one transaction, so the indexes can
 * never disagree with each other after a crash; a read fetches each record once (`getRecord`, which `IndexView`
 * reads do not give); and the declarations stored with the entries let a changed declaration rebuild the view.
 */
export class QueryView<T> implements View<T> {
  readonly version: number;
  /** Each batch is one LMDB transaction, whose commit costs an fsync. */
  readonly batchRecords = indexBatchRecords;
  /** The declared indexes (validated copies). */
  readonly indexes: readonly QueryIndex[];
  readonly #declarations: string;
  #context: ViewContext<T> | undefined;
  #root: RootDatabase | undefined;
  /** A commit failed: the store is damaged or the disk full, and lmdb-js would never finish closing it. */
  #commitFailed = false;
  /** When commits reach the disk (F-99): at checkpoints, not one by one. */
  #durability: StoreDurability | undefined;
  #entries: Database<number, Key> | undefined;
  #meta: Database<number | string, string> | undefined;
  #since = -1;
  readonly #watchers = new Set<Watcher<T>>();

  constructor(version: number, options: QueryViewOptions = {}) {
    if (!Number.isSafeInteger(version)) throw new TypeError('version must be an integer');
    if (!isPlainObject(options)) throw new TypeError(`options must be an object, got ${describe(options)}`);
    this.version = version;
    this.indexes = Object.freeze(checkIndexes(options.indexes ?? []));
    this.#declarations = JSON.stringify(this.indexes);
  }

  async open(context: ViewContext<T>): Promise<number> {
    this.#context = context;
    const { root, probed, durability } = await openViewStore(
      join(context.dir, 'query.mdb'),
      (message) => context.report(message),
      (opened) => {
        const meta = opened.openDB<number | string, string>({ name: 'meta' });
        const entries = opened.openDB<number, Key>({ name: 'entries', encoding: 'ordered-binary', ...orderedBinaryKeys });
        return { entries, meta, version: meta.get(versionKey), since: meta.get(sinceKey), declarations: meta.get(indexesKey), layout: meta.get(layoutKey) };
      },
      context.fileMode,
    );
    this.#root = root;
    this.#durability = durability;
    this.#entries = probed.entries;
    const { meta, version, since, declarations, layout } = probed;
    this.#meta = meta;
    if (version === undefined || since === undefined) return -1;
    let stale: string | undefined;
    if (storedSinceProblem(since) !== undefined) stale = `${storedSinceProblem(since)}: rebuilding`;
    else if (version !== this.version) stale = `version ${version} on disk, ${this.version} in code: rebuilding`;
    else if (declarations !== this.#declarations) stale = 'the declared indexes changed: rebuilding';
    else if (layoutProblem(layout) !== undefined) stale = `${layoutProblem(layout)}: rebuilding`;
    if (stale !== undefined) {
      context.report(stale);
      // The entries of another version or other indexes must not survive into the rebuild.
      await this.clear();
      return -1;
    }
    this.#since = since as number;
    return this.#since;
  }

  async apply(records: readonly LogRecord<T>[]): Promise<void> {
    const entries = this.#store();
    const meta = this.#meta as Database<number | string, string>;
    const keyed: Array<[Key[], number]> = [];
    for (const record of records) {
      const item = toQueryRecord(record);
      for (const index of this.indexes) {
        const key = entryKey(index, item, record.offset);
        if (key !== undefined) keyed.push([key, record.offset]);
      }
    }
    const since = (records[records.length - 1] as LogRecord<T>).offset;
    // One transaction: the entries of every index, the since they bring the view to, its version and indexes.
    await this.#durable().write(() => committed(entries.transaction(() => {
      for (const [key, offset] of keyed) entries.putSync(key, offset);
      meta.putSync(sinceKey, since);
      meta.putSync(versionKey, this.version);
      meta.putSync(indexesKey, this.#declarations);
      meta.putSync(layoutKey, keyLayout);
      handleCommitFailure(this.#root);
    }), () => (this.#commitFailed = true)));
    this.#since = since;
    if (this.#watchers.size > 0) {
      const batch: AppliedBatch<T> = { since, records: [...records] };
      for (const watcher of this.#watchers) watcher(batch);
    }
  }

  /** Drops the index entries of deleted records (each entry only while it still points at that record). */
  async delete(records: readonly LogRecord<T>[]): Promise<void> {
    const entries = this.#store();
    const doomed: Array<[Key[], number]> = [];
    for (const record of records) {
      const item = toQueryRecord(record);
      for (const index of this.indexes) {
        const key = entryKey(index, item, record.offset);
        if (key !== undefined) doomed.push([key, record.offset]);
      }
    }
    await this.#durable().write(() => committed(entries.transaction(() => {
      for (const [key, offset] of doomed) if (entries.get(key) === offset) entries.removeSync(key);
      handleCommitFailure(this.#root);
    }), () => (this.#commitFailed = true)));
  }

  /** As `IndexView.prune`: drops the entries (of every index) of records a trim dropped. */
  async prune(below: number): Promise<void> {
    checkPruneBound(below);
    const entries = this.#store();
    const meta = this.#meta as Database<number | string, string>;
    if (below <= ((meta.get(prunedBelowKey) as number | undefined) ?? 0)) return;
    for await (const doomed of entriesBelow(entries, below)) {
      await this.#durable().write(() => committed(entries.transaction(() => {
        for (const key of doomed) entries.removeSync(key);
        handleCommitFailure(this.#root);
      }), () => (this.#commitFailed = true)));
    }
    await this.#durable().write(() => committed(entries.transaction(() => {
      meta.putSync(prunedBelowKey, below);
      handleCommitFailure(this.#root);
    }), () => (this.#commitFailed = true)));
  }

  /** Every apply already committed its entries with their since: a checkpoint makes those commits durable (F-99). */
  async checkpoint(): Promise<void> {
    await committed(this.#durable().sync(), () => (this.#commitFailed = true));
  }

  /** Entries and meta in one transaction: a crash half-way must not leave a `since` over missing entries. */
  async clear(): Promise<void> {
    const entries = this.#store();
    const meta = this.#meta as Database<number | string, string>;
    await this.#durable().write(() => committed(entries.transaction(() => {
      entries.clearSync();
      meta.clearSync();
      handleCommitFailure(this.#root);
    }), () => (this.#commitFailed = true)));
    this.#since = -1;
  }

  #durable(): StoreDurability {
    if (this.#durability === undefined) throw new TypeError('the view is not open');
    return this.#durability;
  }

  async close(): Promise<void> {
    // Live reads waiting for records end with VIEW_CLOSED.
    for (const watcher of this.#watchers) watcher(undefined);
    this.#watchers.clear();
    await closeViewStore(this.#root, this.#commitFailed);
    this.#root = undefined;
    this.#entries = undefined;
  }

  /**
   * Runs a query once the view has caught up (see `ReadOptions`) and yields its results. The query is validated
   * at once: an unknown stage or operator, or a `$sort` / `$reduce` argument that is not a path, is a
   * `TypeError`; a bad `limit` a `RangeError`; `live: true` with `reverse` or with a `$reduce` / `$sort` stage a `TypeError`.
   */
  read<R = unknown>(q: Query, options?: ReadOptions): AsyncIterable<R> {
    return this.#run(this.#compile(q), checkReadOptions(options)) as AsyncIterable<R>;
  }

  /** How `read(q)` would run, without running it: the index and the part of it read, or a scan. */
  explain(q: Query): QueryPlan {
    return this.#compile(q).plan;
  }

  #compile(q: Query): CompiledQuery {
    if (!isPlainObject(q)) throw new TypeError(`a query is an object { query: [stages], reverse?, limit? }, got ${describe(q)}`);
    for (const key of Object.keys(q)) if (!queryKeys.has(key)) throw new TypeError(`unknown query option ${key}`);
    if (q.live !== undefined && typeof q.live !== 'boolean') throw new TypeError('live must be a boolean');
    if (q.reverse !== undefined && typeof q.reverse !== 'boolean') throw new TypeError('reverse must be a boolean');
    const live = q.live === true;
    if (live && q.reverse === true) throw new TypeError('a live query cannot be reversed: new records come in log order');
    let limit = Infinity;
    if (q.limit !== undefined) {
      if (typeof q.limit !== 'number') throw new TypeError('limit must be a number');
      if (!Number.isSafeInteger(q.limit) || q.limit < 0) throw new RangeError('limit must be a non-negative integer');
      limit = q.limit;
    }
    const stages = compileStages(q.query ?? []);
    if (live) {
      const blocking = stages.findIndex((stage) => stage.kind === 'reduce' || stage.kind === 'sort');
      if (blocking >= 0) {
        const name = `$${(stages[blocking] as CompiledStage).kind}`;
        throw new TypeError(
          `a live query can only $filter and $map: query[${blocking}] is a ${name}, which gives its results only after the last record, and a live query has no last record`,
        );
      }
    }
    // The leading filters see the records themselves: only they can be served by an index.
    const filters: QueryFilter[] = [];
    for (const stage of stages) {
      if (stage.kind !== 'filter') break;
      filters.push(stage.filter as QueryFilter);
    }
    const { plan, bounds } = choosePlan(this.indexes, filters);
    return { stages, plan, bounds, reverse: q.reverse === true, limit, live };
  }

  async *#run(query: CompiledQuery, options: ReadOptions | undefined): AsyncIterable<unknown> {
    const context = this.#ready();
    if (query.live) {
      yield* this.#runLive(context, query, options);
      return;
    }
    await context.ready(options);
    if (query.limit === 0) return;
    // What the view has processed now: an index read and a scan see exactly the same records.
    const since = this.#since;
    const results: unknown[] = [];
    const sink = chain(query.stages, { push: (item) => results.push(item), end: () => undefined } satisfies Sink);
    let yielded = 0;
    for await (const record of this.#snapshot(context, query, since)) {
      sink.push(toQueryRecord(record));
      if (results.length === 0) continue;
      for (const result of results) {
        yield result;
        // Returning here ends the loop over the records, which releases the log stream.
        if (++yielded >= query.limit) return;
      }
      results.length = 0;
    }
    sink.end();
    for (const result of results) {
      yield result;
      if (++yielded >= query.limit) return;
    }
  }

  /**
   * A live read (only `$filter` and `$map` stages, forward): the results over the records the view has processed,
   * then those of the records each later apply commits. The watcher is registered before the snapshot's `since`
   * is taken, so a record committed in between is seen once: the snapshot covers every record up to `since`, and
   * the live phase skips every record at or before the last offset already covered.
   */
  async *#runLive(context: ViewContext<T>, query: CompiledQuery, options: ReadOptions | undefined): AsyncIterable<unknown> {
    const queue: Array<AppliedBatch<T> | undefined> = [];
    let wake: (() => void) | undefined;
    const watcher: Watcher<T> = (batch) => {
      queue.push(batch);
      wake?.();
    };
    const signal = options?.signal;
    const onAbort = (): void => wake?.();
    // A function rather than `signal.aborted` inline: the flag changes between yields, which narrowing ignores.
    const stopped = context.stopped;
    const checkAborted = (): void => {
      if (signal?.aborted === true) throw new SluiceError('ABORTED', 'the read was aborted', { cause: signal.reason });
      if (stopped.aborted) throw stopped.reason as Error;
    };
    this.#watchers.add(watcher);
    signal?.addEventListener('abort', onAbort);
    stopped.addEventListener('abort', onAbort);
    try {
      await context.ready(options);
      if (query.limit === 0) return;
      let covered = this.#since;
      // Filters and maps keep no state and push at once: one sink serves both phases.
      const results: unknown[] = [];
      const sink = chain(query.stages, { push: (item) => results.push(item), end: () => undefined } satisfies Sink);
      let yielded = 0;
      for await (const record of this.#snapshot(context, query, covered)) {
        checkAborted();
        sink.push(toQueryRecord(record));
        for (const result of results) {
          yield result;
          if (++yielded >= query.limit) return;
        }
        results.length = 0;
      }
      for (;;) {
        checkAborted();
        if (queue.length === 0) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        const batch = queue.shift();
        if (batch === undefined) throw new SluiceError('VIEW_CLOSED', 'the view closed during a live read');
        // Batches (or, after a rebuild, records) the read has already covered are skipped.
        if (batch.since <= covered) continue;
        for (const record of batch.records) {
          if (record.offset <= covered) continue;
          covered = record.offset;
          sink.push(toQueryRecord(record));
          for (const result of results) {
            yield result;
            if (++yielded >= query.limit) return;
            checkAborted();
          }
          results.length = 0;
        }
      }
    } finally {
      this.#watchers.delete(watcher);
      signal?.removeEventListener('abort', onAbort);
      stopped.removeEventListener('abort', onAbort);
    }
  }

  /** The records the query reads, up to `since`: from its index range, or a scan. */
  #snapshot(context: ViewContext<T>, query: CompiledQuery, since: number): AsyncIterable<LogRecord<T>> {
    return query.bounds === undefined ? this.#scan(context, since, query.reverse) : this.#fromIndex(context, query.bounds, since, query.reverse);
  }

  /** The records in the index range, in log order: offsets first (a snapshot, no LMDB transaction held), then reads. */
  #fromIndex(context: ViewContext<T>, bounds: KeyBounds, since: number, reverse: boolean): AsyncIterable<LogRecord<T>> {
    const offsets: number[] = [];
    const file = join(context.dir, 'query.mdb');
    storeRead(file, () => {
      for (const { value: stored } of this.#store().getRange(bounds)) {
        const offset = checkStoredOffset(stored, file);
        // An apply may have committed after `since` was taken: those records are not part of this read.
        if (offset <= since) offsets.push(offset);
      }
    });
    offsets.sort(reverse ? (a, b) => b - a : (a, b) => a - b);
    return (async function* fetch() {
      for (const offset of offsets) {
        let record: LogRecord<T>;
        try {
          record = await context.getRecord(offset);
        } catch (error) {
          // An entry a crash left behind between the log's deletion and the view's, or one a trim or a compaction
          // left: the record is gone.
          if (isRecordGone(error)) continue;
          throw error;
        }
        yield record;
      }
    })();
  }

  #scan(context: ViewContext<T>, since: number, reverse: boolean): AsyncIterable<LogRecord<T>> {
    if (since < 0) return (async function* nothing() {})();
    return context.stream({ lte: since, reverse });
  }

  #ready(): ViewContext<T> {
    if (this.#context === undefined) throw new TypeError('the view is not in use by a database');
    return this.#context;
  }

  #store(): Database<number, Key> {
    if (this.#entries === undefined) throw new TypeError('the query view is not open');
    return this.#entries;
  }
}

/** `query(version, { indexes })`: see `QueryView`. */
export function query<T>(version: number, options?: QueryViewOptions): QueryView<T> {
  return new QueryView(version, options);
}

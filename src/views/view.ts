import type { LogRecord, StreamOptions } from '../log/log.js';
import { checkSignal } from '../errors.js';

/**
 * Derived state kept in step with the log: an index, a reduction, a query structure. A view processes records
 * in log order and keeps its own state; the runner (not the view) feeds it, batches, checkpoints, rebuilds and
 * makes reads wait.
 *
 * Contract, in the order the runner calls it:
 * 1. `open(context)` is called as soon as the view is used (synchronously, so it can keep the context before
 *    the first read; `context.dir` exists by then, or else the view is stopped once its open settles, as if it had
 *    failed); it loads the persisted state from `context.dir` and resolves to the `since` stored *with* it
 *    (the offset of the last record the state includes, `-1` for none). When the stored state has another
 *    `version`, or is damaged, or from an unknown format, the view discards it and resolves to `-1` (and may say
 *    why through `context.report`): the runner then rebuilds it from the start of the log.
 * 2. `apply(records)` applies a batch of records in offset order, each after the last one applied. It may throw
 *    (or reject): the view is then stopped and reported, and the others go on.
 * 3. `checkpoint(since)` persists the state as of `since`, atomically with `since` itself, so the view never
 *    claims records it has not stored. Called regularly during a rebuild and when the view has caught up.
 * 4. `clear()` discards all state (the runner rebuilds after it): the view is then as after `open` of nothing.
 * 5. `close()` releases files; pending checkpoints were already made by the runner.
 *
 * Reads are the view's own methods (a reduce view has `get`); they call `context.ready(options)` first, which
 * waits until the view has processed every record appended before the read was issued.
 */
export interface View<T> {
  /** Changing it rebuilds the view from the start of the log. */
  readonly version: number;
  /** Records per `apply` while catching up (default `viewBatchRecords`): larger for views whose writes commit. */
  readonly batchRecords?: number;
  open(context: ViewContext<T>): Promise<number>;
  apply(records: readonly LogRecord<T>[]): void | Promise<void>;
  checkpoint(since: number): Promise<void>;
  clear(): Promise<void>;
  close(): Promise<void>;
  /**
   * Optional: records the view has applied were deleted from the log (`Sluice.delete`); called with their
   * values as they were, between batches, only for records at or before the view's `since` (a deleted record the
   * view has not reached yet is never applied). The view decides what a deletion means for its state: the index
   * views drop the record's entries; a view without this method keeps its state as it is (the reduce view:
   * a fold cannot be undone, and a rebuild leaves deleted records out). A throw stops the view, as in `apply`.
   */
  delete?(records: readonly LogRecord<T>[]): void | Promise<void>;
  /**
   * Optional: the log holds no record below `below` any more (a trim dropped its oldest segments); the view may
   * drop state that points at such records. Called between batches, with a `below` larger than the last one it
   * was given in this run (from 0 at each open: a view that keeps what it pruned can return at once), at open and
   * as the log is trimmed. `below` may pass the view's `since` when the view lags behind a trim. Only logs that
   * drop records from the front (`Log.firstOffset`: the native log, JetStream) call it. A throw stops the view, as
   * in `apply`.
   */
  prune?(below: number): void | Promise<void>;
}

/** When a view read may answer. */
export interface ReadOptions {
  /**
   * The offset the view must have processed before the read answers. Default: the log's `since` when the read
   * is issued (read-after-append). `-1`: answer from what is processed now (only waits for the state to load).
   */
  readonly since?: number;
  /** Aborting rejects the wait with `ABORTED`; a signal aborted before the read rejects it at once. */
  readonly signal?: AbortSignal;
}

/**
 * Validates read options (`TypeError` / `RangeError`): an object or nothing, `since` an integer from -1, `signal`
 * an AbortSignal. Returns just those two, so that a read built on a range read (the key and time indexes) never
 * takes a stray `reverse`, `limit` or bound from them.
 */
export function checkReadOptions(options: unknown): ReadOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw new TypeError('read options must be an object');
  const { since, signal } = options as ReadOptions;
  if (since !== undefined && typeof since !== 'number') throw new TypeError(`since must be a number, got ${typeof since}`);
  if (since !== undefined && (!Number.isSafeInteger(since) || since < -1)) throw new RangeError('since must be an integer ≥ -1');
  checkSignal(signal);
  return { ...(since === undefined ? {} : { since }), ...(signal === undefined ? {} : { signal }) };
}

/** What the runner gives a view. */
export interface ViewContext<T = unknown> {
  /** The view's own directory (created, owner-only unless the database's `fileMode` widens it), for its state files. */
  readonly dir: string;
  /** The mode for files the view creates in `dir` (the database's `fileMode`; default 0o600). */
  readonly fileMode: number;
  readonly name: string;
  /** Resolves once the view may answer a read with these options; rejects `VIEW_FAILED` / `VIEW_CLOSED`. */
  ready(options?: ReadOptions): Promise<void>;
  /** Reads a record's value from the log (through the database's mapper): index views return values with keys. */
  get(offset: number): Promise<T>;
  /** As `get`, with the record's time and key. */
  getRecord(offset: number): Promise<LogRecord<T>>;
  /** Streams the log (through the mapper), for views that answer some reads by scanning. */
  stream(options?: StreamOptions): AsyncIterable<LogRecord<T>>;
  /**
   * Aborted when the view stops being fed: it failed (reason: the `VIEW_FAILED` error) or closed (reason: a
   * `VIEW_CLOSED` error). Reads that wait for new records (live reads) end with that reason. A rebuild gives the
   * context a fresh signal.
   */
  readonly stopped: AbortSignal;
  /** Tells the database something a user should know (a damaged state file that will be rebuilt). */
  report(message: string): void;
}

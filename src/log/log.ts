import type { Codec } from '../codec/codec.js';

/**
 * A record as a log hands it out.
 *
 * `offset` is the record's key: its byte offset in the log, stable forever (retention and deletes never renumber
 * records). Offsets grow with every record but are not consecutive integers: the next record's offset is this
 * one's plus the size of this record's frame.
 */
export interface LogRecord<T> {
  readonly offset: number;
  readonly value: T;
  /** The append time in milliseconds since the Unix epoch: given by the caller, or the log's clock. */
  readonly time: number;
  /** The record's key, when it was appended with one (and the log supports keys); `undefined` otherwise. */
  readonly key: Uint8Array | undefined;
}

/** Per-append options. With a batch, `key` and `time` apply to every record of the batch unless given per record. */
export interface AppendOptions {
  /**
   * A key stored next to the value (a string is stored as UTF-8), so that later lookups by key work for any
   * codec. At most `keyBytesMax` bytes. With a batch, an array gives one key per record (`undefined` for none).
   */
  readonly key?: Uint8Array | string | ReadonlyArray<Uint8Array | string | undefined>;
  /**
   * The record's time in milliseconds since the Unix epoch (a non-negative safe integer). Default: the log's
   * clock at the moment of the append. With a batch, an array gives one time per record: every entry must be a
   * time (an `undefined` entry or a hole is a `TypeError`, not the clock; to stamp some records with the clock,
   * give `Date.now()` for them).
   */
  readonly time?: number | readonly number[];
}

/**
 * The range and shape of a stream. Bounds are offsets and need not be record starts: `gt: 14` yields the
 * records whose offset is greater than 14. Giving both `gt` and `gte` (or `lt` and `lte`) is a `TypeError`.
 */
export interface StreamOptions {
  readonly gt?: number;
  readonly gte?: number;
  readonly lt?: number;
  readonly lte?: number;
  /** Newest first. Cannot be combined with `live`. */
  readonly reverse?: boolean;
  /** The most records to yield, counted after the bounds are applied. Default: no limit. `0` yields nothing. */
  readonly limit?: number;
  /**
   * After the records that exist when the stream reaches the end, wait for new ones and yield them as they are
   * appended; the stream then ends only when `limit` or the upper bound is reached, the signal aborts, the
   * consumer stops iterating, or the log closes (which ends the stream with `LOG_CLOSED`).
   */
  readonly live?: boolean;
  /** Aborting ends the stream with a `SluiceError` of code `ABORTED`. */
  readonly signal?: AbortSignal;
}

/** Called with the new `since` after every append (once per batch), in offset order. */
export type SinceListener = (since: number) => void;

/** The life of a log: `opening` → `open` → `closing` → `closed`. */
export type LogStatus = 'opening' | 'open' | 'closing' | 'closed';

/** Optional features, so shared tests and callers can ask rather than guess (after abstract-level's manifest). */
export interface LogSupports {
  /** Records keep the `key` they were appended with. */
  readonly keys: boolean;
  /** Records keep the `time` they were appended with. */
  readonly times: boolean;
  /** Data survives `close()` and a later open. */
  readonly persistent: boolean;
  /** The log can be opened read-only alongside a writer. */
  readonly readonly: boolean;
  /** The log has `delete(offsets)` (absent: it has not). */
  readonly deletes?: boolean;
}

/**
 * An append-only log: the durable truth from which everything else in Sluice is derived.
 *
 * Every implementation (the memory log, the native file log, and the later flumelog-offset and JetStream logs)
 * passes the same conformance suite (`test/conformance/log-suite.ts`) and behaves as described here.
 *
 * Edge cases common to every method:
 * - After `close()` has been called, every method except `close()` fails with `LOG_CLOSED` (methods returning a
 *   promise reject; `stream` yields nothing and its iteration rejects).
 * - Wrong argument types throw `TypeError` synchronously and out-of-range numbers throw `RangeError`
 *   synchronously: they are programmer mistakes, not run-time conditions.
 * - Once a write has failed, every later append rejects with that same `WRITE_FAILED` error until the log is
 *   reopened; reads go on working.
 */
export interface Log<T> extends AsyncDisposable {
  readonly codec: Codec<T>;
  readonly status: LogStatus;
  readonly supports: LogSupports;

  /**
   * The offset of the last record, or `-1` when the log is empty. Advances only when an append resolves, so a
   * record at or before `since` is readable (the one exception: a file log in `buffered` durability whose write
   * failed has lost the appends it had acknowledged but not yet written; reading them fails with `WRITE_FAILED`).
   * Monotonic while the log is open.
   */
  readonly since: number;

  /**
   * Optional, on logs that drop records from the front (the native log's trims, a JetStream stream's purges and
   * limits): the offset below which the log holds no record any more, as the log last learnt it. Never decreases.
   * Views are told of it (`View.prune`) to drop state that points below it.
   */
  readonly firstOffset?: number;

  /**
   * Appends one value and resolves to its offset; appends an array of values as one batch and resolves to their
   * offsets, in order. What "resolved" promises about durability depends on the implementation and its options
   * (for the file log: see `Durability`); it always means the record is readable and counted in `since`.
   *
   * - A batch is atomic: after a crash either all of its records are in the log or none is.
   * - An empty batch resolves to `[]` and writes nothing; where an append would fail without writing (a read-only
   *   log: `READ_ONLY`; after a failed write: `WRITE_FAILED`), it fails alike. To append one value that is itself
   *   an array, wrap it: `append([[1, 2]])`.
   * - `undefined`, or a value the codec cannot encode, throws `TypeError` and writes nothing (for a batch:
   *   nothing of the batch).
   * - Concurrent appends are ordered by call order: a later call always gets a greater offset.
   */
  append(values: readonly T[], options?: AppendOptions): Promise<number[]>;
  append(value: T, options?: AppendOptions): Promise<number>;

  /**
   * The value of the record at `offset`.
   * - `offset` not a safe integer → `TypeError` / `RangeError` (negative, fractional, NaN).
   * - Past `since`, or before the first available record → `OFFSET_OUT_OF_RANGE`.
   * - No record starts at `offset` → `NOT_A_RECORD`. The file logs tell this from the bytes there, which do not
   *   form a valid frame for `offset`: a value stored as arbitrary bytes (the `raw` codec, `utf8` strings holding
   *   U+0000) may embed bytes that do, so a `get` (or a stream bound) at an offset that is not a record start and
   *   comes from an untrusted source may return such a forged record. JSON values never hold the zero bytes a
   *   frame needs and cannot; encrypted logs authenticate every frame. See README "Offsets from untrusted callers".
   * - The record is damaged → `CORRUPT_RECORD` with the file and position; never the damaged bytes.
   */
  get(offset: number): Promise<T>;

  /** As `get`, with the record's offset, time and key. */
  getRecord(offset: number): Promise<LogRecord<T>>;

  /**
   * The records in offset order (or reverse), within the bounds. A stream that is not `live` reads the records
   * that exist when it reaches them, so records appended while it runs may be included.
   * - An empty log or an empty range yields nothing.
   * - A damaged record ends the stream with `CORRUPT_RECORD` (file and position); nothing damaged is yielded.
   * - Breaking out of `for await` releases the stream at once.
   * Options are validated synchronously (`TypeError` / `RangeError`).
   */
  stream(options?: StreamOptions): AsyncIterable<LogRecord<T>>;

  /**
   * Calls `listener` with the new `since` after every append (once per batch) until the returned function is
   * called. A listener that throws does not affect the append: its error is rethrown asynchronously.
   */
  subscribe(listener: SinceListener): () => void;

  /**
   * Optional (`supports.deletes`): deletes the records at `offsets`. A deleted record keeps its offset (no
   * record is renumbered), `get` of it fails with `RECORD_DELETED`, and streams skip it; `since` does not change.
   * - Every offset is checked before anything changes: `OFFSET_OUT_OF_RANGE`, `NOT_A_RECORD`; wrong types throw.
   * - Deleting a deleted record does nothing.
   * - A stream that already read a record may still yield it; reads issued after the promise resolves do not.
   */
  delete?(offsets: number | readonly number[]): Promise<void>;

  /**
   * Makes every record appended so far durable (on disk, fsynced) and resolves to the offset of the last durable
   * record (`-1` when the log is empty). For a log without a disk it resolves to `since`.
   */
  sync(): Promise<number>;

  /**
   * Waits for pending appends to settle, makes them durable, releases files and locks. Idempotent: every call
   * returns the same promise. Live streams end with `LOG_CLOSED`.
   */
  close(): Promise<void>;
}

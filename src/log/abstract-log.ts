import { assertCodec, type Codec } from '../codec/codec.js';
import { asError, SluiceError } from '../errors.js';
import { deleteRecordsMax, keyBytesMax } from '../limits.js';
import { LogStream } from './log-stream.js';
import type {
  AppendOptions,
  Log,
  LogRecord,
  LogStatus,
  LogSupports,
  SinceListener,
  StreamOptions,
} from './log.js';
import { toScanRange, type ScanRange } from './range.js';

/** A value ready to be written: encoded by the codec, with its key and time resolved. */
export interface EncodedEntry {
  readonly value: Uint8Array | string;
  /** `undefined` when the record has no key (an empty key is stored as no key). */
  readonly key: Uint8Array | undefined;
  readonly time: number;
}

/** Reads the records of one stream in order, resuming where it stopped. Each implementation provides one. */
export interface RecordCursor<T> {
  /**
   * Up to `max` next records within the range, or `[]` when there are none (yet: a forward cursor asked again
   * later yields records appended in between). A reverse cursor reads the log as it was when it was created.
   */
  next(max: number): LogRecord<T>[] | Promise<LogRecord<T>[]>;
  /** True once no record can follow: the cursor passed the range's upper bound (or its start, reversed). */
  readonly done: boolean;
  /** Releases what the cursor holds. Idempotent. */
  close(): void;
}

export interface AbstractLogOptions<T> {
  readonly codec: Codec<T>;
  /** The clock for records appended without a time (milliseconds since the Unix epoch). */
  readonly now?: () => number;
}

interface ChangeWaiter {
  readonly resolve: () => void;
}

/**
 * The public half of every log: argument validation, encoding, lifecycle, `since` and its listeners, and
 * streams (bounds, limits, live waiting, cancellation). Implementations fill in the small protected methods
 * (`_append`, `_read`, `_cursor`, `_sync`, `_close`) and call `_advance` when records become visible, so every
 * log validates and behaves alike (the pattern of abstract-level).
 */
export abstract class AbstractLog<T> implements Log<T> {
  readonly codec: Codec<T>;
  abstract readonly supports: LogSupports;

  #status: LogStatus = 'opening';
  #since = -1;
  /** Bumped whenever `since` moves, so a live stream can tell "nothing new" from "something new". */
  #version = 0;
  #closing: Promise<void> | undefined;
  readonly #listeners = new Set<SinceListener>();
  #waiters: ChangeWaiter[] = [];
  readonly #streams = new Set<{ release(): void }>();
  readonly #now: () => number;

  protected constructor(options: AbstractLogOptions<T>) {
    assertCodec<T>(options.codec);
    if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('now must be a function');
    this.codec = options.codec;
    this.#now = options.now ?? Date.now;
    const codec = options.codec;
    this.#decodeRange =
      typeof codec.decodeRange === 'function'
        ? codec.decodeRange.bind(codec)
        : (buffer, start, end) => codec.decode(buffer.subarray(start, end));
  }

  get status(): LogStatus {
    return this.#status;
  }

  get since(): number {
    return this.#since;
  }

  /** Called by implementations once they are ready, with the offset of the last record found. */
  protected _opened(since: number): void {
    this.#since = since;
    this.#status = 'open';
  }

  /** Called by implementations when records up to `since` have become visible (after an append settles). */
  protected _advance(since: number): void {
    if (since <= this.#since) return;
    this.#since = since;
    this.#version++;
    this.#wakeWaiters();
    for (const listener of this.#listeners) {
      try {
        listener(since);
      } catch (error) {
        // A listener must not be able to fail an append that already happened: its error surfaces on its own,
        // after the append's callers have run, as an EventEmitter listener's would.
        setImmediate(() => {
          throw error;
        });
      }
    }
  }

  /**
   * Called by implementations when the log changed without new records (a read-only log found its writer cut
   * records away): live streams waiting for records read again, and meet the error.
   */
  protected _changed(): void {
    this.#version++;
    this.#wakeWaiters();
  }

  /** The error for a call on a log that is not open. */
  protected _closedError(): SluiceError {
    return new SluiceError('LOG_CLOSED', `the log is ${this.#status}`);
  }

  append(values: readonly T[], options?: AppendOptions): Promise<number[]>;
  append(value: T, options?: AppendOptions): Promise<number>;
  append(input: T | readonly T[], options?: AppendOptions): Promise<number | number[]> {
    const isBatch = Array.isArray(input);
    const values: readonly T[] = isBatch ? (input as readonly T[]) : [input as T];
    const entries = this.#encode(values, options, isBatch);
    if (this.#status !== 'open') return Promise.reject(this._closedError());
    if (entries.length === 0) {
      // Nothing to write, but a log that takes no appends says so for an empty batch too.
      const refusal = this._appendRefusal();
      return refusal === undefined ? Promise.resolve([]) : Promise.reject(refusal);
    }
    const appended = this._append(entries);
    return isBatch ? appended : appended.then(firstOf);
  }

  #encode(values: readonly T[], options: AppendOptions | undefined, isBatch: boolean): EncodedEntry[] {
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw new TypeError('append options must be an object');
    }
    const keys = options?.key;
    const times = options?.time;
    if (Array.isArray(keys) && (!isBatch || keys.length !== values.length)) {
      throw new TypeError('an array of keys needs a batch of the same length');
    }
    if (Array.isArray(times) && (!isBatch || times.length !== values.length)) {
      throw new TypeError('an array of times needs a batch of the same length');
    }
    const now = times === undefined ? this.#now() : 0;
    const entries = new Array<EncodedEntry>(values.length);
    for (let i = 0; i < values.length; i++) {
      const key = Array.isArray(keys) ? (keys as ReadonlyArray<Uint8Array | string | undefined>)[i] : keys;
      // In an array every entry is a time: a hole or `undefined` is refused rather than read as 0 or the clock.
      const time = Array.isArray(times) ? checkTime((times as readonly number[])[i], i) : times;
      entries[i] = {
        value: this.#encodeValue(values[i] as T),
        key: encodeKey(key as Uint8Array | string | undefined),
        time: time === undefined ? now : checkTime(time),
      };
    }
    return entries;
  }

  #encodeValue(value: T): Uint8Array | string {
    if (value === undefined) throw new TypeError('cannot append undefined');
    let encoded: Uint8Array | string | undefined;
    try {
      encoded = this.codec.encode(value);
    } catch (error) {
      throw new TypeError(`the ${this.codec.name} codec cannot encode this value: ${describe(error)}`, {
        cause: error,
      });
    }
    if (typeof encoded !== 'string' && !(encoded instanceof Uint8Array)) {
      throw new TypeError(`the ${this.codec.name} codec returned neither bytes nor a string`);
    }
    return encoded;
  }

  get(offset: number): Promise<T> {
    checkOffset(offset);
    if (this.#status !== 'open') return Promise.reject(this._closedError());
    try {
      const record = this._read(offset);
      // Synchronous reads skip a promise: random gets are a hot path.
      return record instanceof Promise ? record.then(valueOf) : Promise.resolve(record.value);
    } catch (error) {
      return Promise.reject(asError(error));
    }
  }

  getRecord(offset: number): Promise<LogRecord<T>> {
    checkOffset(offset);
    if (this.#status !== 'open') return Promise.reject(this._closedError());
    try {
      return Promise.resolve(this._read(offset));
    } catch (error) {
      return Promise.reject(asError(error));
    }
  }

  /**
   * Builds a record whose value is `buffer[start, end)` (valid only during the call), wrapping codec failures.
   */
  protected _record(
    offset: number,
    buffer: Buffer,
    start: number,
    end: number,
    time: number,
    key: Uint8Array | undefined,
  ): LogRecord<T> {
    let value: T;
    try {
      value = this.#decodeRange(buffer, start, end);
    } catch (error) {
      throw new SluiceError(
        'DECODE_FAILED',
        `the ${this.codec.name} codec cannot decode the record at offset ${offset}: ${describe(error)}`,
        { cause: error, offset },
      );
    }
    return { offset, value, time, key };
  }

  readonly #decodeRange: (buffer: Buffer, start: number, end: number) => T;

  stream(options?: StreamOptions): AsyncIterableIterator<LogRecord<T>> {
    const range = toScanRange(options);
    return new LogStream(this, range, options?.signal);
  }

  /** Opens a cursor for a stream; called on the stream's first read. @internal */
  _openCursor(range: ScanRange): RecordCursor<T> {
    return this._cursor(range);
  }

  /** @internal */
  _track(stream: { release(): void }, open: boolean): void {
    if (open) this.#streams.add(stream);
    else this.#streams.delete(stream);
  }

  /** The current change version, for `_waitForChange`. @internal */
  get _version(): number {
    return this.#version;
  }

  /**
   * Resolves once `since` has moved past the version the caller saw, or the log stops being open, or `signal`
   * aborts (the caller checks which). @internal
   */
  _waitForChange(seenVersion: number, signal: AbortSignal | undefined): Promise<void> {
    if (seenVersion !== this.#version || this.#status !== 'open' || signal?.aborted === true) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      // An aborted stream stops waiting at once: its waiter leaves the list, and when it was the last one the log
      // stops following (a read-only log's poll would otherwise hold the process open for nobody).
      const abort = (): void => {
        const index = this.#waiters.indexOf(waiter);
        if (index < 0) return;
        this.#waiters.splice(index, 1);
        if (this.#waiters.length === 0) this._followStop();
        resolve();
      };
      const waiter: ChangeWaiter = {
        resolve: () => {
          signal?.removeEventListener('abort', abort);
          resolve();
        },
      };
      signal?.addEventListener('abort', abort, { once: true });
      this.#waiters.push(waiter);
      if (this.#waiters.length === 1) this._followStart();
    });
  }

  #wakeWaiters(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    this._followStop();
    for (const waiter of waiters) waiter.resolve();
  }

  subscribe(listener: SinceListener): () => void {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    // Wrap, so that subscribing the same function twice gives two independent subscriptions.
    const subscription: SinceListener = (since) => listener(since);
    this.#listeners.add(subscription);
    return () => {
      this.#listeners.delete(subscription);
    };
  }

  sync(): Promise<number> {
    if (this.#status !== 'open') return Promise.reject(this._closedError());
    return this._sync();
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#status === 'opening') this.#status = 'closed';
    if (this.#status === 'closed') return;
    this.#status = 'closing';
    try {
      await this._close();
    } finally {
      this.#status = 'closed';
      this.#listeners.clear();
      this.#wakeWaiters();
      for (const stream of this.#streams) stream.release();
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Writes the entries as one batch and resolves to their offsets once they are visible (and as durable as the
   * log promises). Called only while open, with at least one entry. Must call `_advance` before resolving.
   */
  protected abstract _append(entries: readonly EncodedEntry[]): Promise<number[]>;

  /** Reads the record at `offset` (a non-negative safe integer) or throws; may return a promise. */
  protected abstract _read(offset: number): LogRecord<T> | Promise<LogRecord<T>>;

  /** Opens a cursor over the range (`low` is at least 0). */
  protected abstract _cursor(range: ScanRange): RecordCursor<T>;

  /**
   * Why the log takes no appends now (`READ_ONLY`, a sticky `WRITE_FAILED`), or `undefined`. Asked for an empty
   * batch, which never reaches `_append`; `_append` itself refuses as it always did.
   */
  protected _appendRefusal(): Error | undefined {
    return undefined;
  }

  /** Makes everything appended durable; resolves to the last durable offset. */
  protected abstract _sync(): Promise<number>;

  /** Settles pending appends, makes them durable, releases resources. Called once. */
  protected abstract _close(): Promise<void>;

  /** A live stream started waiting for records: a log that must look for other writers' records starts now. */
  protected _followStart(): void {}

  /** No live stream waits any more. */
  protected _followStop(): void {}
}

function firstOf(offsets: number[]): number {
  return offsets[0] as number;
}

function valueOf<T>(record: LogRecord<T>): T {
  return record.value;
}

/** Validates an offset argument: a programmer mistake when it is not a non-negative safe integer. */
export function checkOffset(offset: unknown): asserts offset is number {
  if (typeof offset !== 'number') throw new TypeError(`offset must be a number, got ${typeof offset}`);
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`offset must be a non-negative safe integer, got ${offset}`);
  }
}

/** Validates the argument of `delete`: one offset or an array of them, each a non-negative safe integer. */
export function checkOffsets(offsets: unknown): readonly number[] {
  if (typeof offsets !== 'number' && !Array.isArray(offsets)) {
    throw new TypeError('offsets must be a number or an array of numbers');
  }
  const list: readonly unknown[] = typeof offsets === 'number' ? [offsets] : (offsets as readonly unknown[]);
  if (list.length > deleteRecordsMax) throw new RangeError(`delete takes at most ${deleteRecordsMax} offsets at once, got ${list.length}`);
  for (const offset of list) checkOffset(offset);
  return list as readonly number[];
}

function checkTime(time: unknown, index?: number): number {
  const what = index === undefined ? 'time' : `time ${index} of the batch`;
  if (typeof time !== 'number') throw new TypeError(`${what} must be a number of milliseconds, got ${typeof time}`);
  if (!Number.isSafeInteger(time) || time < 0) throw new RangeError(`${what} must be a non-negative integer, got ${time}`);
  return time;
}

function encodeKey(key: Uint8Array | string | undefined): Uint8Array | undefined {
  if (key === undefined) return undefined;
  let bytes: Uint8Array;
  if (typeof key === 'string') bytes = Buffer.from(key, 'utf8');
  else if (key instanceof Uint8Array) bytes = Uint8Array.prototype.slice.call(key);
  else throw new TypeError('key must be a string or a Uint8Array');
  if (bytes.length > keyBytesMax) throw new RangeError(`a key is at most ${keyBytesMax} bytes, got ${bytes.length}`);
  return bytes.length === 0 ? undefined : bytes;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

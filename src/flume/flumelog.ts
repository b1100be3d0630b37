import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { asError } from '../errors.js';
import type { Log, LogRecord, StreamOptions } from '../log/log.js';
import { toScanRange } from '../log/range.js';
import { callbackify, checkCallback, invoke, toFlumeError, type NodeCallback } from './errors.js';
import { LiveReaders } from './live-readers.js';
import { createObservable, isObservable, type Observable } from './observable.js';
import { fromAsyncIterable, type PullSource } from './pull.js';

/** How a flume method is called: `sync` returns, `async` calls back, `source` returns a pull-stream source. */
export type FlumeMethodType = 'sync' | 'async' | 'source';

/**
 * Stream options of flumelogs and of `db.stream`. Bounds are seqs (for Sluice logs: offsets); `null` counts as
 * absent. `limit` counts after the bounds; absent, `0` or negative means no limit (as upstream). `live`: the
 * records that exist, then new ones as they are appended; `old: false`: only new ones (implies `live`).
 * Items are `{ value, seq }`, the bare seq with `values: false`, the bare value with `seqs: false`.
 */
export interface FlumeStreamOptions {
  readonly gt?: number | null;
  readonly gte?: number | null;
  readonly lt?: number | null;
  readonly lte?: number | null;
  readonly reverse?: boolean;
  readonly limit?: number | null;
  readonly live?: boolean;
  readonly old?: boolean;
  readonly seqs?: boolean;
  readonly values?: boolean;
  /** flumelog-offset's cache switch: accepted and ignored (Sluice logs keep no decoded-record cache). */
  readonly cache?: boolean;
}

/** A stream item in the default shape (keys in flumelog-offset's order). */
export interface FlumeItem<T> {
  value: T;
  seq: number;
}

/**
 * A log as flumedb consumes it: the interface of flumelog-offset and its siblings. `since` is the seq of the
 * last record (`-1` when empty, `undefined` while loading) and moves before an append calls back.
 */
export interface FlumeLog<T> {
  readonly since: Observable<number>;
  /** Where the log lives; flume views keep their state in its directory (`path.dirname(filename)`). */
  readonly filename?: string | undefined;
  /** Extra methods flumedb mounts on the database, by type. */
  readonly methods?: Readonly<Record<string, FlumeMethodType>>;
  append(value: T | readonly T[], cb: NodeCallback<number>): void;
  get(seq: number, cb: NodeCallback<T>): void;
  stream(options?: FlumeStreamOptions): PullSource<unknown>;
  close?(cb: (error?: Error | null) => void): void;
}

/** The flumelog that `fromLog` and the constructors return: a Sluice log seen through flume's interface. */
export interface SluiceFlumeLog<T> extends FlumeLog<T> {
  readonly filename: string | undefined;
  readonly methods: { readonly del: 'async' };
  /**
   * Deletes records (one seq or an array) when the log supports it (the flumelog-offset log does): their
   * values are gone, `get` then fails with code `flumelog:deleted`, streams skip them, seqs stay taken.
   * On a log without deletion it throws `TypeError` (through `cb` when the log was still loading).
   */
  del(seqs: number | readonly number[], cb: (error: Error | null) => void): void;
  /** Closes the Sluice log (idempotent; `cb` is optional). */
  close(cb?: (error?: Error | null) => void): void;
  /** Calls back once the log has loaded, or with the error that kept it from loading. @internal */
  readonly [whenLoaded]: (cb: (error: Error | null) => void) => void;
}

/** Lets `Flume` learn that a log of ours failed to load (its `since` then never gets a value). @internal */
export const whenLoaded: unique symbol = Symbol('sluice/flume whenLoaded');

export interface FromLogOptions {
  /**
   * The flume `filename`: views keep their state in `path.dirname(filename)`. Default: the log's `dir` when it
   * has one (a `FileLog`), otherwise none (views that need a directory, such as flumeview-level, then refuse).
   * Its directory is created at once when missing: views open their files there as soon as they are used.
   */
  readonly filename?: string;
}

/** A log that can delete records (the flumelog-offset log). */
interface DeletingLog {
  delete(offsets: number | readonly number[]): Promise<void>;
}

/** True when `value` looks like a Sluice `Log` (rather than a flumelog or a promise). */
export function isSluiceLog(value: unknown): value is Log<unknown> {
  const candidate = value as Partial<Log<unknown>> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.since === 'number' &&
    typeof candidate.subscribe === 'function' &&
    typeof candidate.append === 'function'
  );
}

/** True when `value` looks like a flumelog (any, from npm or ours). */
export function isFlumeLog(value: unknown): value is FlumeLog<unknown> {
  const candidate = value as Partial<FlumeLog<unknown>> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    isObservable(candidate.since) &&
    typeof candidate.append === 'function' &&
    typeof candidate.get === 'function' &&
    typeof candidate.stream === 'function'
  );
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * A flumelog over any Sluice log, or over a promise of one (for logs that open asynchronously: `since` is
 * `undefined` until it resolves, and calls made meanwhile wait). If the promise rejects, every call fails with
 * its error. What the flumelog adds to the Sluice log is only the calling convention: offsets are the seqs,
 * errors are the log's `SluiceError`s (a deleted record's is a `FlumeDeletedError`).
 *
 * - `append(value, cb)` calls back with the record's own offset; `append(array, cb)` writes one atomic batch
 *   and calls back with the offset of its last record (`since` for an empty array, which writes nothing).
 *   Once the log has loaded, a value its codec refuses throws `TypeError` at once; before, it goes to `cb`.
 *   As flumelog-offset's, the callback runs once the live streams of this flumelog waiting for new records have
 *   handed the appended ones over (see `LiveReaders`), and callbacks keep the order of the appends.
 */
export function fromLog<T>(input: Log<T> | PromiseLike<Log<T>>, options: FromLogOptions = {}): SluiceFlumeLog<T> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (options.filename !== undefined && typeof options.filename !== 'string') {
    throw new TypeError('filename must be a string');
  }
  if (!isSluiceLog(input) && !isPromiseLike(input)) {
    throw new TypeError('fromLog needs a Sluice log or a promise of one');
  }
  const since = createObservable<number>();
  let log: Log<T> | undefined;
  let loadError: Error | undefined;
  let unsubscribe: (() => void) | undefined;
  let closing: Promise<void> | undefined;
  let waiting: Array<(error: Error | null) => void> = [];
  const liveReaders = new LiveReaders();

  const settleWaiting = (error: Error | null): void => {
    const due = waiting;
    waiting = [];
    for (const waiter of due) waiter(error);
  };
  const adopt = (loaded: Log<T>): void => {
    if (!isSluiceLog(loaded)) throw new TypeError('the promise given to fromLog resolved to something not a log');
    log = loaded;
    unsubscribe = loaded.subscribe((value) => since.set(value));
    since.set(loaded.since);
    settleWaiting(null);
  };
  const fail = (error: unknown): void => {
    loadError = asError(error);
    settleWaiting(loadError);
  };
  /** Runs `use` with the log now if it is loaded (errors it throws reach the caller), else once it loads. */
  const withLog = (onError: (error: Error) => void, use: (loaded: Log<T>) => void): void => {
    if (log !== undefined) return use(log);
    if (loadError !== undefined) return onError(loadError);
    waiting.push((error) => {
      if (error !== null) return onError(error);
      try {
        use(log as Log<T>);
      } catch (thrown) {
        onError(asError(thrown));
      }
    });
  };
  const loaded = (): Promise<Log<T>> => new Promise((resolve, reject) => withLog(reject, resolve));

  const filename = options.filename ?? (isSluiceLog(input) ? (input as { dir?: unknown }).dir : undefined);
  if (typeof filename === 'string') mkdirSync(dirname(filename), { recursive: true });

  if (isSluiceLog(input)) adopt(input);
  else Promise.resolve(input).then(adopt).catch(fail);

  const flumelog: SluiceFlumeLog<T> = {
    since: since.observable,
    filename: typeof filename === 'string' ? filename : undefined,
    methods: { del: 'async' },
    append(value, cb) {
      checkCallback(cb, 'append');
      if (value === undefined) throw new TypeError('cannot append undefined');
      withLog(
        (error) => invoke(cb, error),
        (target) => {
          // Under flumedb, a live stream waiting for records has an append's before its callback runs (see
          // `LiveReaders`).
          const after = target.since;
          const batch = Array.isArray(value);
          // A single value goes as a batch of one: its promise then settles in as many steps as a batch's, and
          // the callbacks keep the order of the appends, as flumelog-offset's do.
          target.append(batch ? (value as readonly T[]) : [value as T]).then(
            (offsets) => {
              const last = offsets[offsets.length - 1];
              const seq = last ?? target.since;
              liveReaders.callBack(last === undefined ? undefined : { after, seq }, () => invoke(cb, null, seq));
            },
            (error: unknown) => liveReaders.callBack(undefined, () => invoke(cb, toFlumeError(error))),
          );
        },
      );
    },
    get(seq, cb) {
      checkCallback(cb, 'get');
      withLog(
        (error) => invoke(cb, error),
        (target) => callbackify(target.get(seq), cb),
      );
    },
    stream(streamOptions) {
      const plan = planStream(streamOptions);
      const reader = plan.live ? liveReaders.reader() : undefined;
      const source = fromAsyncIterable<LogRecord<T>, unknown>(
        async (signal) => {
          // `since` is taken when the log is at hand (at once when loaded): `old: false` then starts from the
          // first read, even if an append made right after it lands before the stream opens.
          const [target, since] = await new Promise<[Log<T>, number]>((resolve, reject) =>
            withLog(reject, (loadedLog) => resolve([loadedLog, loadedLog.since])),
          );
          const options = plan.options(since);
          reader?.opened(options);
          return target.stream({ ...options, signal });
        },
        {
          map:
            reader === undefined
              ? plan.shape
              : (record) => {
                  reader.handedOver(record.offset);
                  return plan.shape(record);
                },
        },
      );
      return reader === undefined ? source : reader.wrap(source);
    },
    del(seqs, cb) {
      checkCallback(cb, 'del');
      withLog(
        (error) => invoke(cb, error),
        (target) => {
          const deleting = target as Partial<DeletingLog>;
          if (typeof deleting.delete !== 'function') {
            throw new TypeError('this log cannot delete records: it has no delete(offsets) method');
          }
          callbackify(deleting.delete.call(target, seqs), cb, () => null);
        },
      );
    },
    close(cb) {
      if (cb !== undefined) checkCallback(cb, 'close');
      closing ??= (async () => {
        let target: Log<T>;
        try {
          target = await loaded();
        } catch {
          return; // It never opened: there is nothing to close.
        }
        unsubscribe?.();
        await target.close();
      })();
      if (cb !== undefined) callbackify(closing, cb, () => null);
    },
    [whenLoaded]: (cb) => withLog(cb, () => cb(null)),
  };
  return flumelog;
}

interface StreamPlan<T> {
  /** Whether the stream follows new records. */
  readonly live: boolean;
  /** The Sluice stream options, given the log's `since` when the stream opens (for `old: false`). */
  options(since: number): StreamOptions;
  shape(record: LogRecord<T>): unknown;
}

/**
 * Turns flume stream options into Sluice ones, validating them at once (a mistake throws `TypeError` /
 * `RangeError` from `stream()`, not later from the first read).
 */
export function planStream<T>(input: FlumeStreamOptions | undefined): StreamPlan<T> {
  const options = input ?? {};
  if (typeof options !== 'object' || options === null) throw new TypeError('stream options must be an object');
  const newOnly = options.old === false;
  const base: StreamOptions = {
    ...bound('gt', options.gt),
    ...bound('gte', options.gte),
    ...bound('lt', options.lt),
    ...bound('lte', options.lte),
    reverse: Boolean(options.reverse),
    live: Boolean(options.live) || newOnly,
    ...(typeof options.limit === 'number' && options.limit > 0 ? { limit: options.limit } : {}),
  };
  if (options.limit !== undefined && options.limit !== null && typeof options.limit !== 'number') {
    throw new TypeError('limit must be a number');
  }
  toScanRange(base); // Validates: both gt and gte, a live reversed stream, fractional bounds or limits.
  const seqs = options.seqs !== false;
  const values = options.values !== false;
  return {
    live: base.live === true,
    options(since) {
      if (!newOnly) return base;
      // Only records appended after the stream opens: raise the lower bound to the current end of the log.
      const low = base.gt ?? (base.gte === undefined ? -1 : base.gte - 1);
      return { ...base, gte: undefined, gt: Math.max(low, since) };
    },
    shape: !seqs
      ? (record) => record.value
      : !values
        ? (record) => record.offset
        : // `value` first, as flumelog-offset's items: the order shows wherever an item is serialized (JSON, RPC).
          (record): FlumeItem<T> => ({ value: record.value, seq: record.offset }),
  };
}

function bound(name: 'gt' | 'gte' | 'lt' | 'lte', value: unknown): Partial<Record<typeof name, number>> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number`);
  return { [name]: value };
}

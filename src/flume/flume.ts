import { dirname } from 'node:path';
import { asError } from '../errors.js';
import type { Log } from '../log/log.js';
import { callbackify, checkCallback, closedError, invoke, type NodeCallback } from './errors.js';
import {
  fromLog,
  isFlumeLog,
  isSluiceLog,
  whenLoaded,
  type FlumeItem,
  type FlumeLog,
  type FlumeStreamOptions,
  type SluiceFlumeLog,
} from './flumelog.js';
import { createSettableObservable, readOnly, type Observable, type SettableObservable } from './observable.js';
import { asyncMap, type PullSource } from './pull.js';
import { MountedView } from './mounted-view.js';
import type { CreateView, MountedViewApi, ViewHost, ViewLog } from './view.js';

/** flumedb's mapper: transforms every value before `get`, `stream` and views see it (ssb decrypts with it). */
export type Mapper<T> = (value: T, cb: (error: Error | null, value?: T) => void) => void;

/** Anything `Flume` accepts as its log. */
export type FlumeLogInput<T> = FlumeLog<T> | Log<T> | PromiseLike<Log<T>>;

/**
 * flumedb 2.1.8's database over any log: a flumelog (ours or one from npm), a Sluice `Log`, or a promise of one.
 *
 * - `isReady`: `false` starts with `ready` false: views neither index nor answer reads (except `since: -1`)
 *   until the application calls `db.ready.set(true)` (for instance once its mapper has its keys). Upstream,
 *   `ready` held back reads only, so views indexed values the mapper could not map yet.
 * - `mapper(value, cb)`: applied to every value `get`, `stream` and views see.
 */
export function Flume<T = unknown>(log: FlumeLogInput<T>, isReady?: boolean, mapper?: Mapper<T>): FlumeDB<T> {
  return new FlumeDB<T>(log, isReady, mapper);
}

/**
 * A flume database. Appends go to the log and never wait for a view to index. A view's `async` and `source`
 * methods wait until the view has processed every record appended (called back) before the call: `{ since: N }`
 * waits for N instead, `{ since: -1 }` (any negative) only for the view's state to load; a `since` that is
 * neither is a `RangeError` at once (NaN, a fraction, Infinity). Waiting reads are released in offset order,
 * fail with `VIEW_CLOSED` when the database closes and `VIEW_FAILED` when their view failed.
 */
export class FlumeDB<T> {
  /**
   * Mounted from the log's `methods`, as flumedb mounts them: present when the log has it (every Sluice
   * flumelog does; see `SluiceFlumeLog.del`).
   */
  declare readonly del: SluiceFlumeLog<T>['del'] | undefined;
  /** The log's `since` (read-only): `undefined` while loading, `-1` when empty, else the last record's seq. */
  readonly since: Observable<number>;
  /** Whether views may index and answer; the application may set it. */
  readonly ready: SettableObservable<boolean>;
  /** The directory views keep their state in (the log's), or `null` for a log without a filename. */
  readonly dir: string | null;
  /** The mounted views, by name (each is also `db[name]`). */
  readonly views: Record<string, MountedViewApi> = {};
  readonly #log: FlumeLog<T>;
  readonly #mapper: Mapper<T> | undefined;
  readonly #mounted = new Map<string, MountedView<T>>();
  readonly #host: ViewHost<T>;
  #closing: Promise<void> | undefined;

  constructor(log: FlumeLogInput<T>, isReady?: boolean, mapper?: Mapper<T>) {
    if (isReady !== undefined && isReady !== null && typeof isReady !== 'boolean') {
      throw new TypeError('isReady must be a boolean');
    }
    if (mapper !== undefined && mapper !== null && typeof mapper !== 'function') {
      throw new TypeError('mapper must be a function (value, cb)');
    }
    this.#log = toFlumeLog(log);
    this.#mapper = mapper ?? undefined;
    this.since = readOnly(this.#log.since);
    this.ready = createSettableObservable<boolean>(isReady !== false);
    const filename = this.#log.filename;
    this.dir = typeof filename === 'string' ? dirname(filename) : null;
    this.#host = {
      since: this.since,
      ready: this.ready,
      whenLoaded: (cb) => this.#whenLoaded(cb),
      feed: (from) => this.#feed(from),
      checkOpen: (what) => this.#checkOpen(what),
      lastRecordAtOrBefore: (seq) => this.#lastRecordAtOrBefore(seq),
    };
    this.ready((value) => {
      if (value === true) for (const view of this.#mounted.values()) view.onReady();
    });
    this.#mountLogMethods();
  }

  /** One item of a reverse stream of seqs: the last record at or before `seq` that is not deleted. */
  #lastRecordAtOrBefore(seq: number): Promise<number> {
    if (seq < 0) return Promise.resolve(-1);
    return new Promise((resolve, reject) => {
      const source = this.#log.stream({ lte: seq, reverse: true, limit: 1, values: false });
      source(null, (end, data) => {
        if (end === true) resolve(-1);
        else if (end) reject(asError(end));
        else {
          resolve(data as number);
          source(true, () => undefined);
        }
      });
    });
  }

  /** True once `close` was called: every method but `close` then throws `LOG_CLOSED`. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Appends one value (`cb(err, seq)` with its own seq) or an array as one batch (`cb` gets the seq of its last
   * record). `since` has moved when `cb` runs and, on Sluice's flumelogs as on flumelog-offset, the live streams
   * waiting for new records (views' feeds included) have been handed the batch. Does not wait for views to index.
   */
  readonly append = (value: T | readonly T[], cb: NodeCallback<number>): void => {
    this.#checkOpen('append');
    this.#log.append(value, cb);
  };

  /** The value at `seq` (through the mapper), once the log has loaded. */
  readonly get = (seq: number, cb: NodeCallback<T>): void => {
    this.#checkOpen('get');
    checkCallback(cb, 'get');
    this.#get(seq, cb);
  };

  /** A pull-stream source over the log (see `FlumeStreamOptions`), values through the mapper. */
  readonly stream = (options?: FlumeStreamOptions): PullSource<unknown> => {
    this.#checkOpen('stream');
    return this.#stream(options);
  };

  /**
   * Mounts the view `createView({ get, stream, since, filename, dir }, name)` returns at `db[name]` and starts
   * feeding it. A taken name, or a view without `since`, `createSink`, `destroy`, `close` or `methods`, is a
   * `TypeError` naming it. Returns the database.
   */
  readonly use = <N extends string>(name: N, createView: CreateView<T>): this & Record<N, MountedViewApi> => {
    this.#checkOpen('use');
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('a view name must be a non-empty string');
    // View modules name their files after the view (flumeview-reduce: `<name>.json` beside the log): a name
    // must not lead out of the directory.
    if (/[/\\\0]/.test(name) || name === '.' || name === '..') throw new TypeError(`the view name ${JSON.stringify(name)} is not a file name`);
    if (name in this) throw new TypeError(`the name ${name} is already in use`);
    if (typeof createView !== 'function') throw new TypeError(`view ${name}: createView must be a function`);
    const filename = this.#log.filename ?? undefined;
    const viewLog: ViewLog<T> = {
      get: (seq, cb) => this.#get(seq, cb),
      stream: (options) => this.#stream(options),
      since: this.since,
      filename,
      dir: this.dir ?? undefined,
    };
    const mounted = new MountedView<T>(name, createView(viewLog, name), this.#host);
    this.#mounted.set(name, mounted);
    this.views[name] = mounted.api;
    Object.defineProperty(this, name, { value: mounted.api, enumerable: true });
    return this as this & Record<N, MountedViewApi>;
  };

  /**
   * Destroys every view and feeds it from the start; `cb` once all have caught up (while `ready` is false,
   * once all are destroyed and restarted: they index once it is set). Reads wait for the rebuilt state.
   */
  readonly rebuild = (cb?: (error: Error | null) => void): void => {
    this.#checkOpen('rebuild');
    if (cb !== undefined) checkCallback(cb, 'rebuild');
    const rebuilding = Promise.all([...this.#mounted.values()].map((view) => view.rebuild()));
    if (cb !== undefined) callbackify(rebuilding, cb, () => null);
    else rebuilding.catch(() => undefined); // Each failed view already fails its reads with the error.
  };

  /**
   * Closes the views (their waiting reads fail with `VIEW_CLOSED`; each closes after its sink has written what
   * it took), then the log. Idempotent: a later call calls back when the first is done.
   */
  readonly close = (cb?: (error?: Error | null) => void): void => {
    if (cb !== undefined) checkCallback(cb, 'close');
    this.#closing ??= this.#close();
    if (cb !== undefined) callbackify(this.#closing, cb, () => null);
  };

  async #close(): Promise<void> {
    const results = await Promise.allSettled([...this.#mounted.values()].map((view) => view.close()));
    await new Promise<void>((resolve, reject) => {
      if (typeof this.#log.close !== 'function') return resolve();
      this.#log.close((error) => (error ? reject(asError(error)) : resolve()));
    });
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) throw asError(failed.reason);
  }

  #checkOpen(what: string): void {
    if (this.closed) throw closedError(what);
  }

  #whenLoaded(cb: (error: Error | null) => void): void {
    const log = this.#log as Partial<SluiceFlumeLog<T>>;
    // Ours report a failure to load; a flumelog from npm only ever gets a `since`.
    if (typeof log[whenLoaded] === 'function') log[whenLoaded](cb);
    else this.#log.since.once(() => cb(null));
  }

  #get(seq: number, cb: NodeCallback<T>): void {
    this.#whenLoaded((error) => {
      if (error !== null) return invoke(cb, error);
      this.#log.get(seq, (getError, value) => {
        if (getError) return cb(getError);
        if (this.#mapper === undefined) return cb(null, value);
        this.#mapper(value as T, cb);
      });
    });
  }

  #stream(options: FlumeStreamOptions | undefined): PullSource<unknown> {
    const source = this.#log.stream(options);
    const mapper = this.#mapper;
    if (mapper === undefined || options?.values === false) return source;
    if (options?.seqs === false) return asyncMap(source, (value, cb) => mapper(value as T, cb));
    return asyncMap(source, (item, cb) =>
      // flumedb replaces the item's value: the keys keep the log's order (`value` first, as flumelog-offset's).
      mapper((item as FlumeItem<T>).value, (error, value) => cb(error, { value, seq: (item as FlumeItem<T>).seq })),
    );
  }

  /** A view's input: mapped like `stream`, but a record is mapped and handed over only while `ready` is true. */
  #feed(from: number): PullSource<FlumeItem<T>> {
    const source = this.#log.stream({ gt: from, live: true, seqs: true, values: true }) as PullSource<FlumeItem<T>>;
    const mapper = this.#mapper;
    return asyncMap(source, (item, cb) =>
      this.#whenReady(() => {
        if (mapper === undefined) return cb(null, item);
        mapper(item.value, (error, value) => cb(error, { value: value as T, seq: item.seq }));
      }),
    );
  }

  #whenReady(run: () => void): void {
    if (this.ready.value === true) return run();
    const stop = this.ready((value) => {
      if (value !== true) return;
      stop();
      run();
    }, false);
  }

  /** flumedb mounts the log's own methods (`log.methods`: name → type) on the database. */
  #mountLogMethods(): void {
    const methods = this.#log.methods ?? {};
    for (const [name, type] of Object.entries(methods)) {
      const fn = (this.#log as unknown as Record<string, unknown>)[name];
      if (typeof fn !== 'function') throw new TypeError(`the log's method ${name} (${type}) is not a function`);
      if (name in this) throw new TypeError(`the log's method ${name} conflicts with a flumedb member`);
      Object.defineProperty(this, name, {
        value: (...args: unknown[]): unknown => {
          this.#checkOpen(name);
          return (fn as (...args: unknown[]) => unknown).apply(this.#log, args);
        },
        enumerable: true,
      });
    }
  }
}

function toFlumeLog<T>(log: FlumeLogInput<T>): FlumeLog<T> {
  if (isFlumeLog(log)) return log;
  if (isSluiceLog(log) || (typeof log === 'object' && log !== null && 'then' in log)) {
    return fromLog(log);
  }
  throw new TypeError('Flume needs a flumelog, a Sluice log, or a promise of a Sluice log');
}

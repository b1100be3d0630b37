import type { NodeCallback } from './errors.js';
import type { FlumeItem, FlumeMethodType, FlumeStreamOptions } from './flumelog.js';
import { isObservable, type Observable } from './observable.js';
import type { PullSource } from './pull.js';

/**
 * The contract between flumedb and its views, as the flume view modules on npm implement it: what a view module
 * returns, what it is given, and how a mounted view looks to the application.
 */

/** A pull-stream sink: consumes a source. */
export type PullSink<T> = (source: PullSource<T>) => void;

/** What a flume view module returns (flumeview-reduce, flumeview-level, flumeview-query…). */
export interface FlumeView {
  /** The seq of the last record the view processed (`-1` for none); `undefined`/`null` while it loads. */
  readonly since: Observable<number>;
  /** A sink for `{ value, seq }` items from the view's `since` on; calls `cb` when it ends. */
  createSink(cb: (error?: Error | null) => void): PullSink<FlumeItem<unknown>>;
  /** Discards the view's state and sets its `since` to `-1`. */
  destroy(cb: (error?: Error | null) => void): void;
  /** Releases what the view holds, after writing its last state. */
  close(cb: (error?: Error | null) => void): void;
  /** The view's read methods, by type. */
  readonly methods: Readonly<Record<string, FlumeMethodType>>;
}

/** What `use` hands a view module: the log as views read it (values through the database's mapper). */
export interface ViewLog<T> {
  get(seq: number, cb: NodeCallback<T>): void;
  stream(options?: FlumeStreamOptions): PullSource<unknown>;
  readonly since: Observable<number>;
  readonly filename: string | undefined;
  readonly dir: string | undefined;
}

export type CreateView<T> = (log: ViewLog<T>, name: string) => FlumeView;

/**
 * A view as mounted at `db[name]`: its methods, wrapped so that `async` and `source` ones wait for the view
 * (see `Flume`), and its `since`, read-only.
 */
export interface MountedViewApi {
  readonly name: string;
  readonly since: Observable<number>;
  readonly methods: Readonly<Record<string, FlumeMethodType>>;
  /**
   * Closes this view alone, as flumedb's `db[name].close(cb)` (or `close(err, cb)`: a view module whose `close`
   * takes two arguments is given `err`). Its waiting reads fail with `VIEW_CLOSED`, then the view is closed
   * once its sink has written what it took; later reads, and its sync methods, fail with `VIEW_CLOSED`. The
   * other views go on, `db.rebuild` leaves it closed, and `db.close` does not close it twice.
   */
  readonly close: {
    (cb?: (error?: Error | null) => void): void;
    (error: Error | null, cb?: (error?: Error | null) => void): void;
  };
  /**
   * The view's methods, by name. Views define them at run time, so their types are unknown here: TypeScript
   * callers cast to the view's own signatures (flumeview-reduce's `get` is `(options, cb) => void`).
   */
  readonly [method: string]: unknown;
}

/** What a mounted view needs from its database. */
export interface ViewHost<T> {
  /** The log's `since`. */
  readonly since: Observable<number>;
  readonly ready: Observable<boolean>;
  /** Calls back once the log has loaded (with the error that kept it from loading). */
  whenLoaded(cb: (error: Error | null) => void): void;
  /** The view's input: live `{ value, seq }` items after `from`, mapped, held back while `ready` is false. */
  feed(from: number): PullSource<FlumeItem<T>>;
  /** Throws `LOG_CLOSED` once the database is closed. */
  checkOpen(what: string): void;
  /**
   * The seq of the last record at or before `seq` that streams still yield (`-1` for none): when the last
   * records were deleted, a view reaches only that one, never the log's `since`.
   */
  lastRecordAtOrBefore(seq: number): Promise<number>;
}

const methodTypes: ReadonlySet<string> = new Set(['sync', 'async', 'source']);
const reservedNames: ReadonlySet<string> = new Set(['name', 'since', 'methods', 'close']);

/** Checks a view module's result: each missing or misshapen member is a `TypeError` naming it. */
export function checkView(name: string, view: unknown): FlumeView {
  if (typeof view !== 'object' || view === null) {
    throw new TypeError(`flume view "${name}": the view factory must return an object`);
  }
  const candidate = view as Record<string, unknown>;
  if (!isObservable(candidate.since)) throw new TypeError(`flume view "${name}" must have since (an observable)`);
  for (const member of ['createSink', 'destroy', 'close']) {
    if (typeof candidate[member] !== 'function') {
      throw new TypeError(`flume view "${name}" must have a ${member} method`);
    }
  }
  const methods = candidate.methods;
  if (typeof methods !== 'object' || methods === null) {
    throw new TypeError(`flume view "${name}" must have methods (an object of method types)`);
  }
  for (const [method, type] of Object.entries(methods)) {
    if (typeof type !== 'string' || !methodTypes.has(type)) {
      throw new TypeError(`flume view "${name}": method ${method} has type ${String(type)}, not sync, async or source`);
    }
    if (typeof candidate[method] !== 'function') {
      throw new TypeError(`flume view "${name}": method ${method} (${type}) is not a function`);
    }
    if (reservedNames.has(method)) throw new TypeError(`flume view "${name}": a method cannot be named ${method}`);
  }
  return view as FlumeView;
}

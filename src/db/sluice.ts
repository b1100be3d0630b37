import { checkFileMode } from '../io/file-mode.js';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Codec, JsonValue } from '../codec/codec.js';
import { isSluiceError, SluiceError } from '../errors.js';
import { checkOffsets } from '../log/abstract-log.js';
import { FileLog, type Durability } from '../log/file/file-log.js';
import { recordBatches } from '../log/log-stream.js';
import type { AppendOptions, Log, LogRecord, StreamOptions } from '../log/log.js';
import { ViewRunner, type RunnerSource, type ViewProgress, type ViewStatus } from '../views/runner.js';
import type { ReadOptions, View } from '../views/view.js';
import { checkOptionNames } from '../log/open-checks.js';

export interface SluiceOptions<T> {
  /**
   * The log; default: the native file log in `dir` (with `codec` and `durability`, which a given log has already
   * chosen: `TypeError` when they come with it). Closed with the database; `LOG_CLOSED` when it is closed already.
   */
  readonly log?: Log<T>;
  readonly codec?: Codec<T>;
  readonly durability?: Durability;
  /** Views to use from the start, by name. */
  readonly views?: Readonly<Record<string, View<T>>>;
  /** Applied to every value before views, `get` and `stream` see it (flumedb uses it to decrypt). */
  readonly mapper?: (value: T, offset: number) => T | Promise<T>;
  /**
   * The mode of the files the database creates (the native log's, when it opens one, and every view's state);
   * directories get the same bits plus search. Default 0o600 (owner only), whatever the umask.
   */
  readonly fileMode?: number;
}

/**
 * Events: `progress` (ViewProgress), `view-error` ({ view, offset, error }: `offset` is the first record of the
 * batch the view failed on, or -1 when its `open` failed; a view applies a batch as a whole, so which record of it
 * threw is the view's to say, in `error`), `report` ({ view, message }). A listener that throws does not affect
 * the view that emitted the event: its error is rethrown asynchronously, as a log's subscribers' are.
 */
export interface SluiceEvents {
  progress: [ViewProgress];
  'view-error': [{ readonly view: string; readonly offset: number; readonly error: Error }];
  report: [{ readonly view: string; readonly message: string }];
}

const viewNamePattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const viewMethods = ['open', 'apply', 'checkpoint', 'clear', 'close'] as const;

/**
 * The database: one log, and views kept in step with it. Appends go to the log and never wait for views; a view
 * read waits until that view has processed every record appended before the read (see `ReadOptions`). View
 * state lives in `<dir>/views/<name>/`.
 */
export class Sluice<T = JsonValue> extends EventEmitter<SluiceEvents> {
  readonly dir: string;
  readonly log: Log<T>;
  readonly #mapper: ((value: T, offset: number) => T | Promise<T>) | undefined;
  readonly #fileMode: number;
  readonly #runners = new Map<string, ViewRunner<T>>();
  readonly #source: RunnerSource<T>;
  #closing: Promise<void> | undefined;

  private constructor(dir: string, log: Log<T>, mapper: SluiceOptions<T>['mapper'], fileMode: number) {
    super();
    this.dir = dir;
    this.log = log;
    this.#mapper = mapper;
    this.#fileMode = fileMode;
    this.#source = {
      get since() {
        return log.since;
      },
      // Not `this.stream`: a view still catching up while the database closes must read on until it stops.
      stream: (options) => this.#mapped(options),
      batches: (options) => this.#mappedBatches(options),
      subscribe: (listener) => log.subscribe(listener),
      get: async (offset) => {
        const value = await log.get(offset);
        return mapper === undefined ? value : mapper(value, offset);
      },
      getRecord: async (offset) => {
        const record = await log.getRecord(offset);
        return mapper === undefined ? record : { ...record, value: await mapper(record.value, offset) };
      },
      // Logs that drop records from the front say where they start now (trims, a stream's purges and limits).
      ...(log.firstOffset === undefined ? {} : { firstOffset: () => log.firstOffset ?? 0 }),
      // Unmapped: only whether the log has a record there matters, not its value.
      startsRecord: async (offset) => {
        try {
          await log.get(offset);
          return true;
        } catch (error) {
          // Inside the stretch of records a compaction dropped: the view's records are intact, and its stream
          // goes on from the first record after the filler.
          if (isSluiceError(error, 'NOT_A_RECORD')) return log instanceof FileLog && log.compactedAt(offset);
          // Deleted or undecodable: a record starts there. Out of range at or below `since`: trimmed away, which
          // cannot tell, and a rebuild would lose the trimmed records for good.
          if (isSluiceError(error, 'RECORD_DELETED') || isSluiceError(error, 'DECODE_FAILED') || isSluiceError(error, 'OFFSET_OUT_OF_RANGE')) {
            return true;
          }
          throw error;
        }
      },
    };
  }

  /** Opens the database in `dir`, with the native log there unless `options.log` is given. */
  static async open<T = JsonValue>(dir: string, options: SluiceOptions<T> = {}): Promise<Sluice<T>> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string');
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    // The native log's other options (retention, security…) are FileLog.open's: such a log is given as `log`.
    checkOptionNames(options, ['log', 'codec', 'durability', 'views', 'mapper', 'fileMode'], 'Sluice.open');
    if (options.mapper !== undefined && typeof options.mapper !== 'function') {
      throw new TypeError('mapper must be a function');
    }
    const fileMode = checkFileMode(options.fileMode);
    if (options.log !== undefined) checkGivenLog(options);
    const views: unknown = options.views ?? {};
    // An array would give views named "0", "1"…: names are what find a view's state again.
    if (typeof views !== 'object' || views === null || Array.isArray(views)) {
      throw new TypeError('views must be an object from view name to view');
    }
    const named = Object.entries(views as Readonly<Record<string, View<T>>>);
    // Before the log is opened: a bad view must not leave it open (and locked) behind a thrown error.
    const given = new Set<View<T>>();
    for (const [name, view] of named) {
      checkView(name, view);
      if (given.has(view)) throw new TypeError(`view ${name} is the same object as another view given`);
      checkNotInUse(name, view);
      given.add(view);
    }
    const log =
      options.log ??
      (await FileLog.open<T>(dir, {
        ...(options.codec === undefined ? {} : { codec: options.codec }),
        ...(options.durability === undefined ? {} : { durability: options.durability }),
        fileMode,
      }));
    const db = new Sluice<T>(dir, log, options.mapper, fileMode);
    try {
      for (const [name, view] of named) db.use(name, view);
    } catch (error) {
      // Another database took one of the views while the log opened: the log is not left open (and locked).
      await db.close().catch(() => undefined);
      throw error;
    }
    return db;
  }

  get since(): number {
    return this.log.since;
  }

  append(values: readonly T[], options?: AppendOptions): Promise<number[]>;
  append(value: T, options?: AppendOptions): Promise<number>;
  append(input: T | readonly T[], options?: AppendOptions): Promise<number | number[]> {
    this.#checkOpen();
    return this.log.append(input as T, options);
  }

  async get(offset: number): Promise<T> {
    this.#checkOpen();
    const value = await this.log.get(offset);
    return this.#mapper === undefined ? value : this.#mapper(value, offset);
  }

  stream(options?: StreamOptions): AsyncIterable<LogRecord<T>> {
    this.#checkOpen();
    return this.#mapped(options);
  }

  #mapped(options: StreamOptions | undefined): AsyncIterable<LogRecord<T>> {
    const records = this.log.stream(options);
    const mapper = this.#mapper;
    if (mapper === undefined) return records;
    return (async function* mapped() {
      for await (const record of records) yield { ...record, value: await mapper(record.value, record.offset) };
    })();
  }

  /** As `#mapped`, in the arrays the log reads (see `recordBatches`). */
  #mappedBatches(options: StreamOptions): AsyncIterable<LogRecord<T>[]> {
    const batches = recordBatches(this.log.stream(options));
    const mapper = this.#mapper;
    if (mapper === undefined) return batches;
    return (async function* mapped() {
      for await (const batch of batches) {
        const out: LogRecord<T>[] = [];
        try {
          for (const record of batch) out.push({ ...record, value: await mapper(record.value, record.offset) });
        } catch (error) {
          // The records before the one the mapper failed on are handed out first, as one by one.
          if (out.length > 0) yield out;
          throw error;
        }
        yield out;
      }
    })();
  }

  /**
   * Deletes records from the log (see `Log.delete`: their offsets stay, `get` fails with `RECORD_DELETED`,
   * streams skip them) and tells every view: each view that has applied one of them gets it in its `delete`
   * (the index views drop its entries). The values are read before the log forgets them. Deleting a deleted
   * record does nothing. `TypeError` when the log cannot delete; the log's errors (`OFFSET_OUT_OF_RANGE`,
   * `NOT_A_RECORD`) before anything changed. While the log deletes, a view that has not reached one of the records
   * stops just before it (appends go on; reads for later offsets wait) until the deletion settles: a record the
   * log deleted is never applied, one it failed to delete is applied as usual, so a failed delete (which may have
   * deleted some of the records: the log is asked which) never costs a view a record. A crash between the log's
   * deletion and a view's leaves that view with entries for deleted records: index reads skip them, and a
   * rebuild drops them.
   */
  delete(offsets: number | readonly number[]): Promise<void> {
    this.#checkOpen();
    const log = this.log;
    if (typeof log.delete !== 'function') throw new TypeError('this log cannot delete records');
    const list = checkOffsets(offsets);
    return this.#delete(log, list);
  }

  async #delete(log: Log<T>, list: readonly number[]): Promise<void> {
    const records: LogRecord<T>[] = [];
    for (const offset of new Set(list)) {
      try {
        records.push(await this.#source.getRecord(offset));
      } catch (error) {
        if (!isSluiceError(error, 'RECORD_DELETED')) throw error;
      }
    }
    // Views learn first that these records are going, so none is fed one between the log's deletion and its own;
    // each holds its feed at the first of them it has not reached until the deletion settles.
    const runners = [...this.#runners.values()];
    const announced = await Promise.allSettled(runners.map((runner) => runner.deleting(records)));
    const settle = (gone: ReadonlySet<number>): Promise<void[]> =>
      Promise.all(
        runners.map((runner, i) => {
          const outcome = announced[i];
          return outcome?.status === 'fulfilled' ? runner.deleted(outcome.value, gone) : Promise.resolve();
        }),
      );
    const refused = announced.find((outcome) => outcome.status === 'rejected');
    if (refused !== undefined) {
      await settle(new Set());
      throw refused.reason;
    }
    try {
      await log.delete?.(list);
    } catch (error) {
      // A failed delete may still have deleted some records (a rewrite that failed half-way): the log says which.
      let gone = new Set<number>();
      try {
        gone = await deletedAmong(log, records);
      } finally {
        await settle(gone);
      }
      throw error;
    }
    await settle(new Set(records.map((record) => record.offset)));
  }

  /**
   * Starts keeping `view` in step with the log under `name` (also after open) and returns it, so its read
   * methods can be called. `TypeError` when the name is taken or invalid, a method is missing, or the view object
   * is already in use (by this database under another name, or by another one that is open): it would be fed
   * every record once per use. A view object is free again once the database that used it has closed.
   */
  use<V extends View<T>>(name: string, view: V): V {
    this.#checkOpen();
    checkView(name, view);
    if (this.#runners.has(name)) throw new TypeError(`a view named ${name} is already in use`);
    checkNotInUse(name, view);
    const runner = new ViewRunner(name, view, this.#source, join(this.dir, 'views', name), {
      progress: (progress) => this.emit('progress', progress),
      failed: (view, offset, error) => this.emit('view-error', { view, offset, error }),
      report: (view, message) => this.emit('report', { view, message }),
    }, this.#fileMode);
    this.#runners.set(name, runner);
    viewsInUse.add(view);
    return view;
  }

  /** The views in use, by name. */
  get views(): Readonly<Record<string, View<T>>> {
    return Object.fromEntries([...this.#runners].map(([name, runner]) => [name, runner.view]));
  }

  /**
   * How far one view is: its status, its `since`, and while it catches up the last progress report (for a
   * progress bar that polls rather than listens).
   */
  viewStatus(name: string): {
    readonly status: ViewStatus;
    readonly since: number;
    readonly progress: ViewProgress | undefined;
  } {
    const runner = this.#runner(name);
    return { status: runner.status, since: runner.since, progress: runner.progress };
  }

  /** Resolves once one view (by name) or every view has caught up as `options` asks. */
  async ready(name?: string, options?: ReadOptions): Promise<void> {
    if (name !== undefined) return this.#runner(name).ready(options);
    await Promise.all([...this.#runners.values()].map((runner) => runner.ready(options)));
  }

  /** Rebuilds one view, or all of them, from the start of the log while appends and other reads go on. */
  async rebuild(name?: string): Promise<void> {
    this.#checkOpen();
    const runners = name === undefined ? [...this.#runners.values()] : [this.#runner(name)];
    await Promise.all(runners.map((runner) => runner.rebuild()));
  }

  #runner(name: string): ViewRunner<T> {
    const runner = this.#runners.get(name);
    if (runner === undefined) throw new TypeError(`no view named ${name}`);
    return runner;
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw new SluiceError('LOG_CLOSED', 'the database is closed');
  }

  /**
   * Closes the views (pending reads fail with `VIEW_CLOSED`, state is checkpointed), then the log. Every view and
   * the log are closed even when one of them fails to; the first failure is then thrown, once all have settled.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      // All settled before the log closes or anything is thrown: a view still closing has its files open, and a
      // caller told the database is closed may reopen it at once.
      const closed = await Promise.allSettled(
        [...this.#runners.values()].map((runner) => runner.close().finally(() => viewsInUse.delete(runner.view))),
      );
      const failures: unknown[] = [];
      for (const outcome of closed) if (outcome.status === 'rejected') failures.push(outcome.reason);
      try {
        await this.log.close();
      } catch (error) {
        failures.push(error);
      }
      if (failures.length > 0) throw failures[0];
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The offsets among `records` the log reads as deleted. */
async function deletedAmong<T>(log: Log<T>, records: readonly LogRecord<T>[]): Promise<Set<number>> {
  const gone = new Set<number>();
  for (const { offset } of records) {
    try {
      await log.get(offset);
    } catch (error) {
      if (isSluiceError(error, 'RECORD_DELETED')) gone.add(offset);
    }
  }
  return gone;
}

/**
 * The view objects of every open database, whoever uses them: a view keeps one state, so it can follow one log
 * once. Released when the database that uses one has closed it.
 */
const viewsInUse = new WeakSet<object>();

function checkNotInUse(name: string, view: View<never>): void {
  if (viewsInUse.has(view)) {
    throw new TypeError(`view ${name} is an object already in use (one view object serves one name of one open database)`);
  }
}

const logMethods = ['append', 'get', 'getRecord', 'stream', 'subscribe', 'sync', 'close'] as const;

/**
 * A log given to `open` is used as it is: it must be a log (anything else would fail only when a view reads or the
 * database closes), still open, and not come with the options of the log `open` would have made in its place,
 * which it could not apply.
 */
function checkGivenLog<T>(options: SluiceOptions<T>): void {
  const log = options.log as Partial<Log<T>> | null;
  if (typeof log !== 'object' || log === null) throw new TypeError('log must be a Sluice log (FileLog, MemoryLog, …)');
  for (const method of logMethods) {
    if (typeof log[method] !== 'function') throw new TypeError(`log must be a Sluice log: it has no ${method}() method`);
  }
  if (typeof log.since !== 'number') throw new TypeError('log must be a Sluice log: it has no since');
  for (const name of ['codec', 'durability'] as const) {
    if (options[name] !== undefined) throw new TypeError(`${name} is an option of the log Sluice opens: give it to the log passed as log`);
  }
  if (log.status === 'closing' || log.status === 'closed') {
    throw new SluiceError('LOG_CLOSED', `the log given is ${log.status}`);
  }
}

/** A programmer mistake in a view given to `use` (`TypeError` / `RangeError` naming what is wrong). */
function checkView(name: string, view: View<never>): void {
  if (typeof name !== 'string' || !viewNamePattern.test(name)) {
    throw new TypeError(`a view name is 1-64 letters, digits, "-" or "_", got ${JSON.stringify(name)}`);
  }
  if (typeof view !== 'object' || view === null) throw new TypeError(`view ${name} must be an object`);
  for (const method of viewMethods) {
    if (typeof view[method] !== 'function') throw new TypeError(`view ${name} has no ${method}() method`);
  }
  if (!Number.isSafeInteger(view.version)) throw new TypeError(`view ${name} has no integer version`);
  if (view.batchRecords !== undefined && (!Number.isSafeInteger(view.batchRecords) || view.batchRecords < 1)) {
    throw new RangeError(`view ${name}: batchRecords must be a positive integer`);
  }
}

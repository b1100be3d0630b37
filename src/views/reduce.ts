import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory } from '../log/file/segment-files.js';
import type { LogRecord } from '../log/log.js';
import { isPlainObject } from './query/values.js';
import { restoreState, writeState } from './state-file.js';
import { checkReadOptions, type ReadOptions, type View, type ViewContext } from './view.js';

export interface ReduceOptions<T, M, S> {
  /** The state before any record: JSON (`TypeError` otherwise), copied, so it can be an object. */
  readonly initial: S;
  /**
   * Turns a record's value into what the reducer sees; returning `undefined` skips the record. Default: the
   * value itself.
   */
  readonly map?: (value: T, record: LogRecord<T>) => M | undefined;
}

/**
 * A reduction of the whole log to one value (flumeview-reduce): `state = reducer(state, map(value))` for every
 * record in order. The state is persisted as JSON with its version and `since` (FORMAT.md F-50), so it must be
 * JSON-serialisable; a state file from another version, or damaged, is discarded and the view rebuilt.
 */
export class ReduceView<T, S, M = T> implements View<T> {
  readonly version: number;
  readonly #reducer: (state: S, mapped: M, record: LogRecord<T>) => S;
  readonly #map: ((value: T, record: LogRecord<T>) => M | undefined) | undefined;
  readonly #initial: S;
  #state: S;
  #context: ViewContext<T> | undefined;
  readonly #watchers = new Set<(state: S) => void>();

  constructor(version: number, reducer: (state: S, mapped: M, record: LogRecord<T>) => S, options: ReduceOptions<T, M, S>) {
    if (!Number.isSafeInteger(version)) throw new TypeError('version must be an integer');
    if (typeof reducer !== 'function') throw new TypeError('reducer must be a function');
    if (typeof options !== 'object' || options === null || !('initial' in options)) {
      throw new TypeError('options.initial is required');
    }
    if (options.map !== undefined && typeof options.map !== 'function') throw new TypeError('map must be a function');
    // The state is stored as JSON: an initial state that JSON cannot hold would fail at the first checkpoint, or
    // come back from the state file as something else (a Map as {}, NaN as null) after a restart.
    const problem = options.initial === undefined ? undefined : notJson(options.initial, 'options.initial', new Set());
    if (problem !== undefined) throw new TypeError(`${problem}: the state of a reduce view must be JSON`);
    this.version = version;
    this.#reducer = reducer;
    this.#map = options.map;
    this.#initial = options.initial;
    this.#state = structuredClone(options.initial);
  }

  /** The reduced state once the view has caught up (see `ReadOptions`). Do not mutate it. */
  async get(options?: ReadOptions): Promise<S> {
    if (this.#context === undefined) throw new TypeError('the view is not in use by a database');
    await this.#context.ready(options);
    return this.#state;
  }

  /**
   * The state once the view has caught up (as `get`), then the new state after every batch of records the view
   * applies, until the consumer stops or `signal` aborts (the iteration then ends quietly), or the view stops
   * (closed or failed: the iteration ends with `VIEW_CLOSED` or `VIEW_FAILED`). States are not
   * queued: a slow consumer sees the latest state, not every intermediate one. Options are checked at once; a
   * signal aborted before the call rejects the first state with `ABORTED`, as any read does.
   */
  changes(options?: ReadOptions): AsyncIterable<S> {
    return this.#changes(checkReadOptions(options));
  }

  async *#changes(options: ReadOptions): AsyncIterable<S> {
    const signal = options.signal;
    let latest: S | undefined;
    let fresh = false;
    let wake: (() => void) | undefined;
    const watcher = (state: S): void => {
      latest = state;
      fresh = true;
      wake?.();
    };
    this.#watchers.add(watcher);
    const onAbort = (): void => wake?.();
    signal?.addEventListener('abort', onAbort);
    // The view stopped (closed or failed): the iteration ends with that reason, as every live read does.
    const stopped = this.#context?.stopped;
    stopped?.addEventListener('abort', onAbort);
    try {
      const first = await this.get(options);
      // Changes up to here are in `first`; the ones made while the consumer handles it must not be lost.
      fresh = false;
      yield first;
      while (signal?.aborted !== true) {
        if (stopped?.aborted === true) throw stopped.reason as Error;
        if (!fresh) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        fresh = false;
        yield latest as S;
      }
    } finally {
      this.#watchers.delete(watcher);
      signal?.removeEventListener('abort', onAbort);
      stopped?.removeEventListener('abort', onAbort);
    }
  }

  async open(context: ViewContext<T>): Promise<number> {
    this.#context = context;
    const stored = await restoreState<S>(this.#path(), this.version, (message) => context.report(message));
    // Nothing stored starts from the initial state, also for a view object used before (by a database now closed).
    this.#state = stored === undefined ? structuredClone(this.#initial) : stored.state;
    if (stored === undefined) return -1;
    return stored.since;
  }

  apply(records: readonly LogRecord<T>[]): void {
    let state = this.#state;
    const map = this.#map;
    for (const record of records) {
      const mapped = map === undefined ? (record.value as unknown as M) : map(record.value, record);
      if (mapped !== undefined) state = this.#reducer(state, mapped, record);
    }
    this.#state = state;
    for (const watcher of this.#watchers) watcher(state);
  }

  checkpoint(since: number): Promise<void> {
    return writeState(this.#path(), { version: this.version, since, state: this.#state }, (this.#context as ViewContext<T>).fileMode);
  }

  /**
   * Back to the initial state, on disk too: a state file left in place would be taken again by an open after a
   * crash, although the log it described may be gone (the view was ahead of it) or the version changed.
   */
  async clear(): Promise<void> {
    this.#state = structuredClone(this.#initial);
    if (this.#context === undefined) return;
    await rm(this.#path(), { force: true });
    await syncDirectory(this.#context.dir);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  #path(): string {
    return join((this.#context as ViewContext<T>).dir, 'state');
  }
}

/** Where `value` stops being JSON that reads back as it is (a description), or `undefined` when it is such JSON. */
function notJson(value: unknown, path: string, ancestors: Set<object>): string | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `${path} is ${value}`;
  if (typeof value !== 'object') return `${path} is a ${typeof value}`;
  if (ancestors.has(value)) return `${path} refers back to itself`;
  const isArray = Array.isArray(value);
  if (!isArray && !isPlainObject(value)) {
    return `${path} is a ${(value as { constructor?: { name?: string } }).constructor?.name ?? 'object with a prototype'}`;
  }
  ancestors.add(value);
  try {
    if (isArray) {
      for (let i = 0; i < value.length; i++) {
        // A hole or `undefined` in an array is written as null.
        const problem = value[i] === undefined ? `${path}[${i}] is undefined` : notJson(value[i], `${path}[${i}]`, ancestors);
        if (problem !== undefined) return problem;
      }
      return undefined;
    }
    for (const [key, item] of Object.entries(value)) {
      // An own property that is undefined is left out by JSON, and reads back as absent: undefined all the same.
      if (item === undefined) continue;
      const problem = notJson(item, `${path}.${key}`, ancestors);
      if (problem !== undefined) return problem;
    }
    return undefined;
  } finally {
    ancestors.delete(value);
  }
}

/** `reduce(version, reducer, { initial, map? })`: see `ReduceView`. */
export function reduce<T, S, M = T>(
  version: number,
  reducer: (state: S, mapped: M, record: LogRecord<T>) => S,
  options: ReduceOptions<T, M, S>,
): ReduceView<T, S, M> {
  return new ReduceView(version, reducer, options);
}

import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { FlumeCodec } from '../../src/flume/codec.js';
import type { FlumeItem, FlumeLog, SluiceFlumeLog } from '../../src/flume/flumelog.js';
import { MemoryLog, NativeLog, OffsetLog as SluiceOffsetLog } from '../../src/flume/logs.js';
import type { Observable } from '../../src/flume/observable.js';
import type { PullSource } from '../../src/flume/pull.js';
import type { CreateView, FlumeView } from '../../src/flume/view.js';

/**
 * The npm modules the flume tests run against, unchanged: CommonJS, loaded with `require`, typed here with
 * just what the tests use.
 */
const require = createRequire(import.meta.url);

type Sink = (source: PullSource<unknown>) => void;

export interface PullStream {
  (...parts: unknown[]): unknown;
  collect(cb: (error: Error | null, items: unknown[]) => void): Sink;
  drain(op?: (item: unknown) => unknown, done?: (error: Error | null) => void): Sink;
  values(items: unknown[]): PullSource<unknown>;
}

/** A mutable observable as the `obv` module makes them (what flume views use for `since`). */
export interface Obv<T> extends Observable<T> {
  set(value: T): Obv<T>;
}

export type ViewFactory = (...args: unknown[]) => CreateView<unknown>;

export const pull = require('pull-stream') as PullStream;
export const Obv = require('obv') as <T>() => Obv<T>;
export const Reduce = require('flumeview-reduce') as (
  version: number,
  reduce: (state: unknown, value: unknown, seq: number) => unknown,
  map?: ((value: unknown, seq: number) => unknown) | null,
  codec?: unknown,
  initial?: unknown,
) => CreateView<unknown>;
export const Level = require('flumeview-level') as (
  version: number,
  map: (value: unknown, seq: number) => unknown[],
) => CreateView<unknown>;
/** flumedb itself, to compare an order of events with. */
export const UpstreamFlume = require('flumedb') as (log: FlumeLog<unknown>) => {
  append(value: unknown, cb: (error: Error | null, seq?: number) => void): void;
  stream(options?: object): PullSource<unknown>;
  close(cb: (error?: Error | null) => void): void;
};
/** flumelog-offset from npm: a flumelog of someone else's, for the database to run on. */
export const UpstreamOffsetLog = require('flumelog-offset') as (
  file: string,
  options: { codec: FlumeCodec<unknown> },
) => FlumeLog<unknown>;
export const Query = require('flumeview-query') as (
  version: number,
  options: { indexes: Array<{ key: string; value: string[][] }> },
) => CreateView<unknown>;

/**
 * flumeview-level 4.0.4 empties its store when its version changed (`destroy()` calls LevelDB's `clear` without
 * a callback) and its `close` does not wait for that clear: closing leveldown while it runs crashes the process
 * (SIGSEGV). flumedb has the same race, and no database can see that clear; so the tests that change a
 * version count the clears in flight (wrapping levelup's) and wait for them before closing.
 */
const levelUp = require('levelup') as { prototype: { clear: (...args: unknown[]) => unknown } };
let levelClearsRunning = 0;
let onLevelClearsDone: Array<() => void> = [];
const levelClear = levelUp.prototype.clear;
levelUp.prototype.clear = function clear(this: unknown, ...args: unknown[]): unknown {
  levelClearsRunning++;
  const finished = (): void => {
    if (--levelClearsRunning > 0) return;
    const waiting = onLevelClearsDone;
    onLevelClearsDone = [];
    for (const resolve of waiting) resolve();
  };
  const last = args.length - 1;
  const cb = args[last];
  if (typeof cb === 'function') {
    args[last] = (...results: unknown[]): unknown => {
      finished();
      return (cb as (...results: unknown[]) => unknown)(...results);
    };
    return levelClear.apply(this, args);
  }
  const result = levelClear.apply(this, args) as Promise<unknown>;
  result.then(finished, finished);
  return result;
};

/** Resolves once no LevelDB clear runs (see above). */
export function levelClearsDone(): Promise<void> {
  if (levelClearsRunning === 0) return Promise.resolve();
  return new Promise((resolve) => onLevelClearsDone.push(resolve));
}

/** JSON values stored as JSON text: the codec flume applications use most (flumecodec's json). */
export const json: FlumeCodec<unknown> = {
  encode: JSON.stringify,
  decode: (data) => JSON.parse(String(data)) as unknown,
};

/** Collects a pull-stream source with pull-stream's own sink. */
export function collect<T = unknown>(source: PullSource<unknown>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    pull(
      source,
      pull.collect((error, items) => (error ? reject(error) : resolve(items as T[]))),
    );
  });
}

/** Runs a callback-taking call as a promise. */
export function call<T = unknown>(run: (cb: (error: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((error, value) => (error ? reject(error) : resolve(value as T))));
}

/** Lets every pending callback, microtask and immediate run. */
export function settle(turns = 3): Promise<void> {
  let chain = Promise.resolve();
  for (let i = 0; i < turns; i++) chain = chain.then(() => new Promise((resolve) => setImmediate(resolve)));
  return chain;
}

/** The flumelog constructors the tests run the real flume modules on. Adding one is one line. */
export interface LogCase {
  readonly name: string;
  /** Keeps its records across `close` and a new open of the same place. */
  readonly persistent: boolean;
  /** A flumelog whose views keep their state in `dir`. */
  open(dir: string): SluiceFlumeLog<unknown>;
}

export const logCases: readonly LogCase[] = [
  { name: 'NativeLog', persistent: true, open: (dir) => NativeLog(join(dir, 'log'), { codec: json }) },
  { name: 'MemoryLog', persistent: false, open: (dir) => MemoryLog({ codec: json, filename: join(dir, 'log') }) },
  { name: 'OffsetLog', persistent: true, open: (dir) => SluiceOffsetLog(join(dir, 'log.offset'), { codec: json }) },
  {
    name: 'OffsetLog (48-bit offsets)',
    persistent: true,
    open: (dir) => SluiceOffsetLog(join(dir, 'log.offset'), { codec: json, offsetCodec: 48 }),
  },
];

/** A hand-made flume view that records what it is given and lets the test decide when it takes each item. */
export interface Probe {
  readonly create: CreateView<unknown>;
  readonly seen: Array<FlumeItem<unknown>>;
  /** What happened, in order: `item`, `destroy`, `sink-end`, `write`, `close`. */
  readonly events: string[];
  readonly since: Obv<number>;
  /** Lets `count` more items through (when gated). */
  step(count?: number): void;
  /** The view's sum of values: its state, read with `get`. */
  readonly state: { sum: number };
}

export interface ProbeOptions {
  /** The `since` the view loads with (default `-1`); `undefined` to leave it loading until `load` is called. */
  readonly loadedSince?: number | null;
  /** Take items only when `step` allows. */
  readonly gated?: boolean;
  /** Throws while taking the item with this value. */
  readonly throwOn?: unknown;
  /** Leave out one required member, to test validation. */
  readonly without?: keyof FlumeView;
}

export function probe(options: ProbeOptions = {}): Probe {
  const since = Obv<number>();
  const seen: Array<FlumeItem<unknown>> = [];
  const events: string[] = [];
  const state = { sum: 0 };
  let allowed = options.gated === true ? 0 : Infinity;
  let resume: (() => void) | undefined;
  const step = (count = 1): void => {
    allowed += count;
    const next = resume;
    resume = undefined;
    next?.();
  };
  if (options.loadedSince !== null) since.set(options.loadedSince ?? -1);
  const view: Record<string, unknown> = {
    since,
    methods: { get: 'async', read: 'source', peek: 'sync' },
    get(_options: unknown, cb: (error: Error | null, value: number) => void) {
      if (typeof _options === 'function') cb = _options as typeof cb;
      cb(null, state.sum);
    },
    read() {
      return pull.values(seen.map((item) => item.value));
    },
    peek() {
      return state.sum;
    },
    createSink(cb: (error?: Error | null) => void) {
      return (read: PullSource<FlumeItem<unknown>>) => {
        const next = (): void => {
          read(null, (end, item) => {
            if (end) {
              events.push('sink-end');
              // Writes its last state asynchronously, as real views do, before calling back.
              setImmediate(() => {
                events.push('write');
                cb(end === true ? null : end);
              });
              return;
            }
            const take = (): void => {
              allowed--;
              const taken = item as FlumeItem<unknown>;
              if (options.throwOn !== undefined && taken.value === options.throwOn) throw new Error('probe threw');
              events.push('item');
              seen.push(taken);
              state.sum += typeof taken.value === 'number' ? taken.value : 0;
              since.set(taken.seq);
              next();
            };
            if (allowed > 0) take();
            else resume = take;
          });
        };
        next();
      };
    },
    destroy(cb: () => void) {
      events.push('destroy');
      seen.length = 0;
      state.sum = 0;
      since.set(-1);
      cb();
    },
    close(cb: () => void) {
      events.push('close');
      setImmediate(cb);
    },
  };
  if (options.without !== undefined) delete view[options.without];
  return { create: () => view as unknown as FlumeView, seen, events, since, step, state };
}

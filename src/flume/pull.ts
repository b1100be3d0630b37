import { asError } from '../errors.js';

/**
 * The pull-stream protocol, implemented here rather than depended on: flume APIs hand out sources, functions
 * `read(abort, cb)`. A consumer calls `read(null, cb)` for the next item and gets `cb(null, item)`, or
 * `cb(true)` at the end, or `cb(error)`. It calls `read(true or error, cb)` to abort: the source stops, answers
 * any read still pending with the end, then calls `cb`. Once ended, every read is answered with that end.
 *
 * Sluice reads are `AsyncIterable`s; `fromAsyncIterable` turns one into a source, `asyncMap` transforms items
 * with a callback (flumedb's `mapper`), `deferred` stands in for a source that is not available yet (a read
 * that must wait for a view).
 */

/** The end of a stream: `true` for a normal end, an `Error` for a failure; `null`/`undefined` for "not ended". */
export type PullEnd = true | Error | null | undefined;

export type PullCallback<T> = (end: PullEnd, data?: T) => void;

export type PullSource<T> = (abort: PullAbort, cb: PullCallback<T>) => void;

/** What a consumer passes as `abort`: falsy to read, `true` or an error to abort. */
export type PullAbort = Error | boolean | null | undefined;

/** Normalises what a consumer passed as `abort`: anything truthy ends the stream. */
function asEnd(abort: PullAbort): true | Error | undefined {
  if (abort === null || abort === undefined || abort === false) return undefined;
  return abort instanceof Error ? abort : true;
}

function checkCallback(cb: unknown): void {
  if (typeof cb !== 'function') throw new TypeError('a pull-stream read needs a callback');
}

/** Rethrows outside of any promise chain: a consumer callback that throws must not become a lost rejection. */
export function rethrowAsync(error: unknown): void {
  setImmediate(() => {
    throw error;
  });
}

export interface FromAsyncIterableOptions<T, U> {
  /** Turns each item into what the source hands out (synchronously). */
  readonly map?: (item: T) => U;
  /**
   * Called when the consumer's callback throws. The stream is ended (the consumer's state is unknown) and, by
   * default, the error is rethrown asynchronously, as an exception thrown in a callback would be.
   */
  readonly onCallbackError?: (error: unknown) => void;
}

/**
 * A pull-stream source over an async iterable, opened on the first read. `open` receives a signal that aborts
 * when the consumer aborts, so a live Sluice stream waiting for the next record stops at once.
 */
export function fromAsyncIterable<T, U = T>(
  open: (signal: AbortSignal) => AsyncIterable<T> | Promise<AsyncIterable<T>>,
  options: FromAsyncIterableOptions<T, U> = {},
): PullSource<U> {
  const controller = new AbortController();
  const map = options.map;
  const onCallbackError = options.onCallbackError ?? rethrowAsync;
  let iterator: AsyncIterator<T> | undefined;
  let opening = false;
  let ended: true | Error | undefined;
  let pending: PullCallback<U> | undefined;

  const settle = (end: PullEnd, data?: U): void => {
    const cb = pending;
    pending = undefined;
    if (cb === undefined) return;
    try {
      cb(end, data);
    } catch (error) {
      stop(true);
      onCallbackError(error);
    }
  };

  const stop = (end: true | Error): void => {
    if (ended !== undefined) return;
    ended = end;
    controller.abort();
    if (iterator !== undefined) closeIterator(iterator);
  };

  const pull = (it: AsyncIterator<T>): void => {
    it.next().then(
      (result) => {
        if (ended !== undefined) return;
        if (result.done === true) {
          stop(true);
          settle(true);
          return;
        }
        let item: U;
        try {
          item = map === undefined ? (result.value as unknown as U) : map(result.value);
        } catch (error) {
          const failure = asError(error);
          stop(failure);
          settle(failure);
          return;
        }
        settle(null, item);
      },
      (error: unknown) => {
        if (ended !== undefined) return;
        const failure = asError(error);
        stop(failure);
        settle(failure);
      },
    );
  };

  return (abort, cb) => {
    checkCallback(cb);
    const end = asEnd(abort);
    if (end !== undefined) {
      stop(end);
      settle(true);
      cb(end);
      return;
    }
    if (ended !== undefined) {
      cb(ended);
      return;
    }
    if (pending !== undefined) throw new TypeError('pull-stream: read called while a read is pending');
    pending = cb;
    if (iterator !== undefined) {
      pull(iterator);
      return;
    }
    if (opening) return;
    opening = true;
    // Opened in the turn of the first read, not a later one: what `open` observes (a live stream's starting
    // point) is then the state as of that read.
    let opened: AsyncIterable<T> | Promise<AsyncIterable<T>>;
    try {
      opened = open(controller.signal);
    } catch (error) {
      opened = Promise.reject(asError(error));
    }
    Promise.resolve(opened)
      .then(
        (iterable) => {
          iterator = iterable[Symbol.asyncIterator]();
          if (ended !== undefined) closeIterator(iterator);
          else pull(iterator);
        },
        (error: unknown) => {
          if (ended !== undefined) return;
          const failure = asError(error);
          stop(failure);
          settle(failure);
        },
      );
  };
}

function closeIterator<T>(iterator: AsyncIterator<T>): void {
  if (typeof iterator.return !== 'function') return;
  // Closing only releases the stream's resources; a failure to close is of no interest to a consumer that left.
  Promise.resolve(iterator.return()).catch(() => undefined);
}

/**
 * Transforms each item of `source` with `fn(item, cb)`. An error from `fn` ends the stream with that error and
 * aborts `source`. An abort while `fn` runs ends at once; the late result is dropped.
 */
export function asyncMap<T, U>(
  source: PullSource<T>,
  fn: (item: T, cb: (error: Error | null | undefined, value?: U) => void) => void,
): PullSource<U> {
  let ended: true | Error | undefined;
  let pending: { cb: PullCallback<U> } | undefined;

  const settle = (read: { cb: PullCallback<U> }, end: PullEnd, data?: U): void => {
    if (pending !== read) return;
    pending = undefined;
    read.cb(end, data);
  };

  return (abort, cb) => {
    checkCallback(cb);
    const end = asEnd(abort);
    if (end !== undefined) {
      if (ended === undefined) ended = end;
      if (pending !== undefined) settle(pending, true);
      source(end, () => cb(end));
      return;
    }
    if (ended !== undefined) {
      cb(ended);
      return;
    }
    if (pending !== undefined) throw new TypeError('pull-stream: read called while a read is pending');
    // An object per read: the callback identity alone cannot tell a late answer from a new read.
    const read = { cb };
    pending = read;
    source(null, (sourceEnd, item) => {
      if (pending !== read) return;
      if (sourceEnd !== null && sourceEnd !== undefined) {
        ended = sourceEnd === true ? true : asError(sourceEnd);
        settle(read, ended);
        return;
      }
      let answered = false;
      const fail = (error: unknown): void => {
        ended = asError(error);
        source(ended, () => undefined);
        settle(read, ended);
      };
      try {
        fn(item as T, (error, value) => {
          answered = true;
          if (pending !== read) return;
          if (error !== null && error !== undefined) fail(error);
          else settle(read, null, value);
        });
      } catch (error) {
        // Thrown by the consumer, called back synchronously: not ours to handle.
        if (answered) throw error;
        // Thrown by `fn` itself: the stream fails with it, as if `fn` had called back with it.
        if (pending === read) fail(error);
      }
    });
  };
}

/**
 * A source that becomes `source` once `start` calls back with it (`start` runs on the first read). Until then
 * a read waits; an error from `start` ends the stream with it; an abort before `start` calls back ends the
 * stream and aborts the source when it arrives.
 */
export function deferred<T>(start: (cb: (error: Error | null, source?: PullSource<T>) => void) => void): PullSource<T> {
  let inner: PullSource<T> | undefined;
  let ended: true | Error | undefined;
  let started = false;
  let waiting: PullCallback<T> | undefined;

  const begin = (): void => {
    started = true;
    start((error, source) => {
      if (ended !== undefined) {
        if (source !== undefined) source(true, () => undefined);
        return;
      }
      if (error !== null || source === undefined) {
        ended = error ?? new TypeError('deferred: started without a source');
        const cb = waiting;
        waiting = undefined;
        cb?.(ended);
        return;
      }
      inner = source;
      const cb = waiting;
      waiting = undefined;
      if (cb !== undefined) source(null, cb);
    });
  };

  return (abort, cb) => {
    checkCallback(cb);
    if (inner !== undefined) {
      inner(abort, cb);
      return;
    }
    const end = asEnd(abort);
    if (end !== undefined) {
      if (ended === undefined) ended = end;
      const pendingRead = waiting;
      waiting = undefined;
      pendingRead?.(true);
      cb(end);
      return;
    }
    if (ended !== undefined) {
      cb(ended);
      return;
    }
    if (waiting !== undefined) throw new TypeError('pull-stream: read called while a read is pending');
    waiting = cb;
    if (!started) begin();
  };
}

/** A source that fails at once with `error` (a read that could not start). */
export function failedSource<T>(error: Error): PullSource<T> {
  return (_abort, cb) => {
    checkCallback(cb);
    cb(error);
  };
}


/**
 * Passes `source` through, catching what the consumer's callback throws: `onThrow` receives it, and the
 * source is aborted, since the consumer is now in an unknown state and will not be called again. flumedb uses
 * it between the log and a view's sink, so a view that throws stops alone instead of taking the process down.
 */
export function guardConsumer<T>(source: PullSource<T>, onThrow: (error: unknown) => void): PullSource<T> {
  let failed = false;
  return (abort, cb) => {
    checkCallback(cb);
    if (failed) {
      cb(true);
      return;
    }
    source(abort, (end, data) => {
      if (failed) return;
      try {
        cb(end, data);
      } catch (error) {
        failed = true;
        source(true, () => undefined);
        onThrow(error);
      }
    });
  };
}

import { asError, SluiceError } from '../errors.js';
import { streamBatchRecords } from '../limits.js';
import type { RecordCursor } from './abstract-log.js';
import type { LogRecord, LogStatus } from './log.js';
import type { ScanRange } from './range.js';

/** What a stream needs from its log (implemented by AbstractLog). */
export interface StreamSource<T> {
  readonly status: LogStatus;
  readonly _version: number;
  _openCursor(range: ScanRange): RecordCursor<T>;
  _track(stream: { release(): void }, open: boolean): void;
  _waitForChange(seenVersion: number, signal: AbortSignal | undefined): Promise<void>;
}

/**
 * One stream over a log: the async iterator handed to `for await`. Buffers a cursor's batch and hands records
 * out one by one, so the per-record cost is one resolved promise.
 */
export class LogStream<T> implements AsyncIterableIterator<LogRecord<T>> {
  readonly #log: StreamSource<T>;
  readonly #range: ScanRange;
  readonly #signal: AbortSignal | undefined;
  #cursor: RecordCursor<T> | undefined;
  #buffer: LogRecord<T>[] = [];
  #index = 0;
  #remaining: number;
  #finished = false;
  #released = false;
  /** Settles once the last call of `next` / `nextBatch` that had to wait settled; `undefined` when none waits. */
  #queue: Promise<void> | undefined;

  constructor(log: StreamSource<T>, range: ScanRange, signal: AbortSignal | undefined) {
    this.#log = log;
    this.#range = range;
    this.#signal = signal;
    this.#remaining = range.limit;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<LogRecord<T>>> {
    if (this.#queue === undefined && this.#index < this.#buffer.length && this.#signal?.aborted !== true) {
      const value = this.#buffer[this.#index++] as LogRecord<T>;
      return Promise.resolve({ done: false, value });
    }
    return this.#serialize(() => this.#next());
  }

  #next(): Promise<IteratorResult<LogRecord<T>>> {
    // An aborted stream hands out nothing more, not even what it holds already: #fill throws ABORTED.
    if (this.#index < this.#buffer.length && this.#signal?.aborted !== true) {
      const value = this.#buffer[this.#index++] as LogRecord<T>;
      return Promise.resolve({ done: false, value });
    }
    return this.#fill();
  }

  /**
   * The records `next` would hand out one by one, as one array: those buffered, else the next batch read (at
   * least one record); `[]` once the stream has ended. Saves a promise per record to readers that take batches.
   */
  nextBatch(): Promise<LogRecord<T>[]> {
    return this.#serialize(() => this.#nextBatch());
  }

  async #nextBatch(): Promise<LogRecord<T>[]> {
    if (this.#index >= this.#buffer.length || this.#signal?.aborted === true) {
      const first = await this.#fill();
      if (first.done === true) return [];
      this.#index = 0;
    }
    const batch = this.#index === 0 ? this.#buffer : this.#buffer.slice(this.#index);
    this.#buffer = [];
    this.#index = 0;
    return batch;
  }

  /**
   * Runs `step` once the calls before it settled. A read that must wait (a cursor's batch, a live stream's new
   * records) would otherwise let a call made meanwhile read too, and the later batch overwrite the earlier one's
   * buffer: as an async generator does, calls queue and get their records in call order.
   */
  #serialize<R>(step: () => Promise<R>): Promise<R> {
    const before = this.#queue;
    const result = before === undefined ? step() : before.then(step);
    const queue = result.then(ignore, ignore);
    this.#queue = queue;
    void queue.then(() => {
      if (this.#queue === queue) this.#queue = undefined;
    });
    return result;
  }

  async #fill(): Promise<IteratorResult<LogRecord<T>>> {
    for (;;) {
      if (this.#finished) return { done: true, value: undefined };
      this.#check();
      // An empty range (`lt: 0`, `gte` past `lt`) holds no record now and never will: a live stream ends too.
      if (this.#remaining === 0 || this.#range.low >= this.#range.high) return this.#finish();
      if (this.#cursor === undefined) {
        this.#cursor = this.#log._openCursor(this.#range);
        this.#log._track(this, true);
      }
      const seenVersion = this.#log._version;
      let batch: LogRecord<T>[];
      try {
        const reading = this.#cursor.next(Math.min(this.#remaining, streamBatchRecords));
        // A cursor that waits on a server (which may be away for long) must not hold an aborted stream open.
        batch = reading instanceof Promise ? await untilAborted(reading, this.#signal) : reading;
      } catch (error) {
        this.#finish();
        throw error;
      }
      // Ended by `return()` while the cursor read.
      if (this.#finished) return { done: true, value: undefined };
      this.#check();
      if (batch.length > 0) {
        this.#remaining -= batch.length;
        this.#buffer = batch;
        this.#index = 1;
        return { done: false, value: batch[0] as LogRecord<T> };
      }
      if (!this.#range.live || this.#cursor.done) return this.#finish();
      await this.#log._waitForChange(seenVersion, this.#signal);
    }
  }

  /** Throws (and ends the stream) when the log closed or the signal aborted. */
  #check(): void {
    if (this.#released || this.#log.status !== 'open') {
      this.#finish();
      throw new SluiceError('LOG_CLOSED', 'the log was closed while the stream was open');
    }
    if (this.#signal?.aborted === true) {
      this.#finish();
      throw new SluiceError('ABORTED', 'the stream was aborted', { cause: this.#signal.reason });
    }
  }

  #finish(): IteratorResult<LogRecord<T>> {
    this.#finished = true;
    this.#buffer = [];
    this.#index = 0;
    if (this.#cursor !== undefined) {
      this.#cursor.close();
      this.#log._track(this, false);
    }
    return { done: true, value: undefined };
  }

  /** The log closed: drop resources; the next read fails with LOG_CLOSED. */
  release(): void {
    this.#released = true;
    this.#buffer = [];
    this.#index = 0;
    this.#cursor?.close();
  }

  return(): Promise<IteratorResult<LogRecord<T>>> {
    return Promise.resolve(this.#finish());
  }

  throw(error?: unknown): Promise<IteratorResult<LogRecord<T>>> {
    this.#finish();
    return Promise.reject(asError(error));
  }
}

function ignore(): void {}

/** `reading`, or `ABORTED` as soon as `signal` aborts (what `reading` settles to later is then dropped). */
function untilAborted<R>(reading: Promise<R>, signal: AbortSignal | undefined): Promise<R> {
  if (signal === undefined) return reading;
  return new Promise<R>((resolve, reject) => {
    const abort = (): void => {
      reading.catch(ignore);
      reject(new SluiceError('ABORTED', 'the stream was aborted', { cause: signal.reason }));
    };
    if (signal.aborted) {
      abort();
      return;
    }
    signal.addEventListener('abort', abort, { once: true });
    reading.then(
      (value) => {
        signal.removeEventListener('abort', abort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(asError(error));
      },
    );
  });
}

/**
 * The records of `records` in arrays, in order: a log's stream hands out the batches it reads (`nextBatch`), any
 * other iterable one record per array. Ending the iteration early ends the stream.
 */
export async function* recordBatches<T>(records: AsyncIterable<LogRecord<T>>): AsyncGenerator<LogRecord<T>[], void, undefined> {
  if (!(records instanceof LogStream)) {
    for await (const record of records) yield [record];
    return;
  }
  const stream = records as LogStream<T>;
  try {
    for (;;) {
      const batch = await stream.nextBatch();
      if (batch.length === 0) return;
      yield batch;
    }
  } finally {
    await stream.return();
  }
}

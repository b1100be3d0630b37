import type { Writable } from 'node:stream';

/** Characters collected before they are written as one chunk. */
const flushChars = 64 * 1024;

/**
 * Lines for stdout, collected and written in chunks (one `write` per line is the main cost of a large dump).
 * Honours backpressure, and treats a reader that went away (EPIPE, as with `| head`) as a request to stop:
 * `closedSignal` aborts and later lines are dropped.
 */
export class LineOutput {
  readonly #stream: Writable;
  readonly #closed = new AbortController();
  #pending: string[] = [];
  #pendingChars = 0;
  #flushScheduled: NodeJS.Immediate | undefined;
  #drained: Promise<void> | undefined;
  #failure: Error | undefined;

  constructor(stream: Writable) {
    this.#stream = stream;
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') this.#failure ??= error;
      this.#closed.abort(error);
    });
  }

  /** Aborts once the output cannot be written any more: producers should stop. */
  get closedSignal(): AbortSignal {
    return this.#closed.signal;
  }

  /** A write failure other than a closed pipe (which is not an error for a command-line tool). */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /**
   * Queues one line. Returns a promise only when the caller should wait before producing more (the stream is
   * backed up); a line that is only queued is written once the event loop turns or enough have collected.
   */
  writeLine(line: string): Promise<void> | undefined {
    if (this.#closed.signal.aborted) return undefined;
    this.#pending.push(line, '\n');
    this.#pendingChars += line.length + 1;
    if (this.#pendingChars >= flushChars) return this.flush();
    // A live dump may wait a long time for its next record: what is queued must not wait with it.
    this.#flushScheduled ??= setImmediate(() => {
      this.#flushScheduled = undefined;
      void this.flush();
    });
    return this.#drained;
  }

  /** Writes what is queued; returns a promise when the stream is backed up. */
  flush(): Promise<void> | undefined {
    if (this.#flushScheduled !== undefined) clearImmediate(this.#flushScheduled);
    this.#flushScheduled = undefined;
    if (this.#pending.length === 0 || this.#closed.signal.aborted) return this.#drained;
    const chunk = this.#pending.join('');
    this.#pending = [];
    this.#pendingChars = 0;
    if (!this.#stream.write(chunk)) this.#drained ??= this.#waitForDrain();
    return this.#drained;
  }

  /** Writes everything queued and waits until the stream has taken it. */
  async end(): Promise<void> {
    await this.flush();
  }

  #waitForDrain(): Promise<void> {
    const stream = this.#stream;
    return new Promise<void>((resolve) => {
      // An error or close means no 'drain' will ever come: stop waiting then too.
      const done = (): void => {
        stream.off('drain', done);
        stream.off('close', done);
        this.#closed.signal.removeEventListener('abort', done);
        this.#drained = undefined;
        resolve();
      };
      stream.on('drain', done);
      stream.on('close', done);
      this.#closed.signal.addEventListener('abort', done);
    });
  }
}

import type { JsMsg } from '@nats-io/jetstream';
import type { RecordCursor } from '../abstract-log.js';
import type { LogRecord } from '../log.js';
import type { ScanRange } from '../range.js';
import { sequenceOf } from './message.js';
import type { OrderedReader } from './ordered-reader.js';

/** What the cursors need from their log. */
export interface CursorHost<T> {
  /** The log's `since`: every sequence up to `sequenceOf(since)` holds a stored message. */
  readonly since: number;
  /** Asks the server for the stream's last sequence, so `since` takes in other writers' records. */
  refresh(): Promise<void>;
  /** A consumer delivered the stored message at `sequence`: `since` may move up to it. */
  observed(sequence: number): void;
  reader(startSequence: number): OrderedReader;
  /** The record in `message`, or `FOREIGN_MESSAGE` / `DECODE_FAILED`. */
  decode(message: JsMsg): LogRecord<T>;
}

/**
 * Reads forwards through one ordered consumer opened at the range's start, and yields what `since` covers: a
 * message the consumer delivers beyond it (a record of this log's own append that has not resolved yet) waits
 * until `since` moves. A range `[low, high)` of offsets is the sequences `low + 1 … high`.
 */
export class ForwardCursor<T> implements RecordCursor<T> {
  readonly #host: CursorHost<T>;
  /** The last sequence in the range. */
  readonly #last: number;
  #next: number;
  #reader: OrderedReader | undefined;
  #held: JsMsg | undefined;
  done = false;

  constructor(host: CursorHost<T>, range: ScanRange) {
    this.#host = host;
    this.#next = sequenceOf(range.low);
    this.#last = range.high;
  }

  async next(max: number): Promise<LogRecord<T>[]> {
    const host = this.#host;
    if (this.done || this.#finishedAt(this.#next)) return [];
    if (this.#next > sequenceOf(host.since)) await host.refresh();
    const records: LogRecord<T>[] = [];
    while (records.length < max && !this.done) {
      const known = this.#next <= sequenceOf(host.since);
      // Wait for the server only for a record known to exist; otherwise take what already arrived.
      if (this.#held === undefined && !(records.length === 0 && known) && (this.#reader?.buffered ?? 0) === 0) break;
      const message = this.#held ?? (await (this.#reader ??= host.reader(this.#next)).next());
      this.#held = undefined;
      if (message === undefined) break;
      if (message.seq < this.#next) continue;
      if (this.#finishedAt(message.seq)) break;
      host.observed(message.seq);
      if (message.seq > sequenceOf(host.since)) {
        this.#held = message;
        break;
      }
      this.#next = message.seq + 1;
      records.push(host.decode(message));
      if (this.#finishedAt(this.#next)) break;
    }
    return records;
  }

  #finishedAt(sequence: number): boolean {
    if (sequence <= this.#last) return false;
    this.close();
    return true;
  }

  close(): void {
    this.done = true;
    this.#held = undefined;
    this.#reader?.close();
  }
}

/**
 * Reads backwards in chunks of at most `max` records, each through a short-lived ordered consumer opened at the
 * chunk's first sequence; the log as it was at the first `next` (its `since` then) is what it reads.
 */
export class ReverseCursor<T> implements RecordCursor<T> {
  readonly #host: CursorHost<T>;
  readonly #range: ScanRange;
  readonly #floor: number;
  /** The highest sequence still to yield; `undefined` until the first `next`. */
  #top: number | undefined;
  #reader: OrderedReader | undefined;
  done = false;

  constructor(host: CursorHost<T>, range: ScanRange) {
    this.#host = host;
    this.#range = range;
    this.#floor = sequenceOf(range.low);
  }

  async next(max: number): Promise<LogRecord<T>[]> {
    const host = this.#host;
    if (this.#top === undefined) {
      if (this.#range.high > sequenceOf(host.since)) await host.refresh();
      this.#top = Math.min(this.#range.high, sequenceOf(host.since));
    }
    while (!this.done) {
      const top = this.#top;
      if (top < this.#floor) {
        this.done = true;
        break;
      }
      const from = Math.max(this.#floor, top - max + 1);
      const records = await this.#chunk(from, top);
      this.#top = from - 1;
      // A chunk can be empty where messages were deleted: go on to the next one rather than end early.
      if (records.length > 0) return records.reverse();
    }
    return [];
  }

  async #chunk(from: number, top: number): Promise<LogRecord<T>[]> {
    const reader = this.#host.reader(from);
    this.#reader = reader;
    const records: LogRecord<T>[] = [];
    try {
      for (;;) {
        const message = await reader.next();
        if (message === undefined || message.seq > top) break;
        records.push(this.#host.decode(message));
        if (message.seq === top) break;
      }
    } finally {
      reader.close();
      this.#reader = undefined;
    }
    return records;
  }

  close(): void {
    this.done = true;
    this.#reader?.close();
  }
}

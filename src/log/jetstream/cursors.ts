import type { JsMsg } from '@nats-io/jetstream';
import type { RecordCursor } from '../abstract-log.js';
import type { LogRecord } from '../log.js';
import type { ScanRange } from '../range.js';
import { BatchAssembler } from './batch.js';
import { sequenceOf } from './message.js';
import { isAbsence, type OrderedReader } from './ordered-reader.js';

/** What the cursors need from their log. */
export interface CursorHost<T> {
  /** The log's `since`: every sequence up to `sequenceOf(since)` holds a stored message. */
  readonly since: number;
  /**
   * The stream's first sequence when the server was last asked: messages below it were removed (a purge, a
   * limit), so no reader waits for them.
   */
  readonly firstSequence: number;
  /** Asks the server for the stream's state, so `since` takes in other writers' records. */
  refresh(): Promise<void>;
  /** A consumer delivered the stored message at `sequence`, a record by the batch rule: `since` may move up to it. */
  observed(sequence: number): void;
  reader(startSequence: number): OrderedReader;
  /** The record in `message`, or `FOREIGN_MESSAGE` / `DECODE_FAILED`. */
  decode(message: JsMsg): LogRecord<T>;
}

/**
 * Reads forwards through one ordered consumer opened at the range's start, and yields what `since` covers: a
 * message the consumer delivers beyond it (a record of this log's own append that has not resolved yet) waits
 * until `since` moves. A range `[low, high)` of offsets is the sequences `low + 1 … high`. The messages of a
 * batch are held until its last one arrives (`BatchAssembler`), even past the range's end; those of a batch that
 * can never complete are dropped. Messages removed behind the log's back are skipped: below the stream's first
 * sequence from the start, and where the reader reports them absent (deleted up to the stream's last sequence).
 */
export class ForwardCursor<T> implements RecordCursor<T> {
  readonly #host: CursorHost<T>;
  /** The last sequence in the range. */
  readonly #last: number;
  /** The sequence after the last message taken from the consumer. */
  #next: number;
  #reader: OrderedReader | undefined;
  readonly #batches = new BatchAssembler<JsMsg>();
  /** Records released by the batch rule and not yet yielded (beyond `since`, or beyond `max`), from `#readyHead`. */
  #ready: JsMsg[] = [];
  #readyHead = 0;
  #started = false;
  done = false;

  constructor(host: CursorHost<T>, range: ScanRange) {
    this.#host = host;
    this.#next = sequenceOf(range.low);
    this.#last = range.high;
  }

  async next(max: number): Promise<LogRecord<T>[]> {
    const host = this.#host;
    if (this.done) return [];
    if (!this.#started) {
      this.#started = true;
      await host.refresh();
      this.#next = Math.max(this.#next, host.firstSequence);
    }
    const nothingReady = this.#readyHead === this.#ready.length;
    if (nothingReady && !this.#batches.holding && this.#next > this.#last) {
      this.close();
      return [];
    }
    if (nothingReady && this.#next > sequenceOf(host.since)) await host.refresh();
    const records: LogRecord<T>[] = [];
    while (records.length < max && !this.done) {
      const ready = this.#ready[this.#readyHead];
      if (ready !== undefined) {
        if (ready.seq > this.#last) {
          this.close();
          break;
        }
        if (ready.seq > sequenceOf(host.since)) break;
        if (++this.#readyHead === this.#ready.length) {
          this.#ready = [];
          this.#readyHead = 0;
        }
        records.push(host.decode(ready));
        continue;
      }
      if (!this.#batches.holding && this.#next > this.#last) {
        this.close();
        break;
      }
      const known = this.#next <= sequenceOf(host.since);
      // Wait for the server only for a message known to exist; otherwise take what already arrived.
      if (!(records.length === 0 && known) && (this.#reader?.buffered ?? 0) === 0) break;
      const message = await (this.#reader ??= host.reader(this.#next)).next(known);
      if (message === undefined) break;
      if (isAbsence(message)) {
        this.#batches.absentThrough(message.absentThrough);
        this.#next = Math.max(this.#next, message.absentThrough + 1);
        continue;
      }
      if (message.seq < this.#next) continue;
      this.#next = message.seq + 1;
      for (const record of this.#batches.push(message)) {
        host.observed(record.seq);
        this.#ready.push(record);
      }
    }
    return records;
  }

  close(): void {
    this.done = true;
    this.#ready = [];
    this.#readyHead = 0;
    this.#reader?.close();
  }
}

/**
 * Reads backwards in chunks of at most `max` records, each through a short-lived ordered consumer opened at the
 * chunk's first sequence; the log as it was at the first `next` (its `since` then) is what it reads. A chunk reads
 * on past its top while the batch rule holds messages (a batch that ends above it), up to that `since` at most.
 * It ends at the stream's first sequence (what lies below was removed), and a chunk ends early where the reader
 * reports its messages absent (deleted behind the log's back).
 */
export class ReverseCursor<T> implements RecordCursor<T> {
  readonly #host: CursorHost<T>;
  readonly #range: ScanRange;
  #floor: number;
  /** The highest sequence still to yield; `undefined` until the first `next`. */
  #top: number | undefined;
  /** `since` (as a sequence) at the first `next`: every batch that has messages up to it ends by it. */
  #end = 0;
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
      await host.refresh();
      this.#floor = Math.max(this.#floor, host.firstSequence);
      this.#end = sequenceOf(host.since);
      this.#top = Math.min(this.#range.high, this.#end);
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
      // A chunk can be empty where messages were deleted or batches dropped: go on rather than end early.
      if (records.length > 0) return records.reverse();
    }
    return [];
  }

  async #chunk(from: number, top: number): Promise<LogRecord<T>[]> {
    const reader = this.#host.reader(from);
    this.#reader = reader;
    const batches = new BatchAssembler<JsMsg>();
    const records: LogRecord<T>[] = [];
    try {
      for (;;) {
        const message = await reader.next(true);
        if (message === undefined) break;
        if (isAbsence(message)) {
          batches.absentThrough(message.absentThrough);
          if (message.absentThrough >= this.#end || (message.absentThrough >= top && !batches.holding)) break;
          continue;
        }
        if (message.seq > this.#end) break;
        for (const record of batches.push(message)) {
          if (record.seq <= top) records.push(this.#host.decode(record));
        }
        if (message.seq >= top && !batches.holding) break;
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

import type { RecordCursor } from '../abstract-log.js';
import type { LogRecord } from '../log.js';
import type { ScanRange } from '../range.js';
import { overheadBytes, type OffsetWidth } from './format.js';
import { FrameWindow, type FrameSpan } from './frame-window.js';

/** What a cursor needs from its log. */
export interface OffsetCursorHost<T> {
  readonly file: string;
  readonly fd: number;
  readonly width: OffsetWidth;
  /** The end of the last visible record. */
  end(): number;
  /** Takes in a writer's new records (read-only logs). */
  refresh(): void;
  /** Decodes the frame's record, or `undefined` for a deleted one (streams skip it). */
  record(window: FrameWindow, frame: FrameSpan): LogRecord<T> | undefined;
}

/**
 * Streams a flumelog-offset file forwards (picking up records appended later, for live streams) or backwards
 * (from the records that exist when it starts), each through its own window. A damaged frame ends the stream
 * with `CORRUPT_RECORD` after the good records before it.
 */
export class OffsetCursor<T> implements RecordCursor<T> {
  readonly #host: OffsetCursorHost<T>;
  readonly #range: ScanRange;
  readonly #window: FrameWindow;
  /** Forwards: the next record's offset. Backwards: the end of the next record. `-1` until resolved. */
  #position = -1;
  done = false;

  constructor(host: OffsetCursorHost<T>, range: ScanRange) {
    this.#host = host;
    this.#range = range;
    this.#window = new FrameWindow(host.fd, host.file, host.width);
  }

  next(max: number): LogRecord<T>[] {
    if (this.done) return [];
    return this.#range.reverse ? this.#backward(max) : this.#forward(max);
  }

  #forward(max: number): LogRecord<T>[] {
    const host = this.#host;
    if (this.#position < 0 || this.#position >= host.end()) host.refresh();
    const end = host.end();
    if (this.#position < 0) {
      // A bound past the end is resolved once records reach it (a live stream from `gt: since`).
      if (this.#range.low >= end) return [];
      this.#position = firstRecordAtOrAfter(this.#window, this.#range.low, end);
    }
    const records: LogRecord<T>[] = [];
    const limit = Math.min(this.#range.high, end);
    const overhead = overheadBytes(host.width);
    try {
      while (records.length < max && this.#position < limit) {
        const frame = this.#window.at(this.#position, end);
        const record = host.record(this.#window, frame);
        if (record !== undefined) records.push(record);
        this.#position += frame.length + overhead;
      }
    } catch (error) {
      // Hand out the good records before the damage; the next call fails at the same place again.
      if (records.length === 0) throw error;
    }
    if (this.#position >= this.#range.high) this.done = true;
    return records;
  }

  #backward(max: number): LogRecord<T>[] {
    const host = this.#host;
    const floor = this.#range.low;
    if (this.#position < 0) {
      host.refresh();
      this.#position = lastRecordEndBefore(this.#window, this.#range.high, host.end());
    }
    const records: LogRecord<T>[] = [];
    try {
      while (records.length < max && this.#position > floor) {
        const frame = this.#window.tryEndingAt(this.#position);
        if (typeof frame === 'string') throw this.#window.corrupt(this.#position, `reading backwards: ${frame}`);
        if (frame.start < floor) {
          this.#position = floor;
          break;
        }
        const record = host.record(this.#window, frame);
        if (record !== undefined) records.push(record);
        this.#position = frame.start;
      }
    } catch (error) {
      if (records.length === 0) throw error;
    }
    if (this.#position <= floor) this.done = true;
    return records;
  }

  close(): void {
    this.done = true;
  }
}

/**
 * The offset of the first record at or after `low` (`low < end`). A bound that is a record start, or one past a
 * record start (as `gt: offset` is), is settled with one read; any other bound walks the records from the nearer
 * end of the file, since the format has no index.
 */
export function firstRecordAtOrAfter(window: FrameWindow, low: number, end: number): number {
  if (low <= 0) return 0;
  if (typeof window.tryAt(low, end) !== 'string') return low;
  const before = window.tryAt(low - 1, end);
  if (typeof before !== 'string') return low - 1 + before.length + overheadBytes(window.width);
  return walkTo(window, low, end);
}

/** The end of the last record whose offset is below `high`: where a reverse scan starts. */
export function lastRecordEndBefore(window: FrameWindow, high: number, end: number): number {
  if (high >= end) return end;
  if (high <= 0) return 0;
  if (typeof window.tryAt(high, end) !== 'string') return high;
  const before = window.tryAt(high - 1, end);
  if (typeof before !== 'string') return high - 1 + before.length + overheadBytes(window.width);
  return walkTo(window, high, end);
}

/** The first record boundary at or after `position`, found by walking whole records from the nearer end. */
function walkTo(window: FrameWindow, position: number, end: number): number {
  const overhead = overheadBytes(window.width);
  if (position < end - position) {
    let at = 0;
    while (at < position) at += window.at(at, end).length + overhead;
    return at;
  }
  let at = end;
  for (;;) {
    const frame = window.tryEndingAt(at);
    if (typeof frame === 'string') throw window.corrupt(at, `reading backwards: ${frame}`);
    if (frame.start < position) return at;
    at = frame.start;
  }
}

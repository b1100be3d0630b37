import type { LogRecord } from '../log.js';
import type { RecordCursor } from '../abstract-log.js';
import type { ScanRange } from '../range.js';
import { flagChained, flagEncrypted, type Frame } from './format.js';
import { FrameReader } from './frame-reader.js';
import type { Segments } from './segments.js';

/** What a cursor needs from its log. */
export interface CursorHost<T> {
  readonly segments: Segments;
  /** Decodes a record; `bytes` are valid only during the call. */
  record(offset: number, buffer: Buffer, start: number, end: number, time: number, key: Uint8Array | undefined): LogRecord<T>;
  /** Brings in records another process appended (read-only logs); a no-op for the writer. */
  refresh(): void;
  /**
   * Before reading at `offset`, and before reporting a failure there: read-only logs fail with `LOG_REWOUND` when
   * their writer cut away records they took in; a no-op for the writer.
   */
  check(offset: number): void;
  /** The frame flags every frame of the log carries (F-71, F-72): 0 for a plain log. */
  readonly securityFlags: number;
  /** Decrypts and decodes an encrypted frame (F-74); `CORRUPT_RECORD` when it does not authenticate. */
  decrypt(offset: number, buffer: Buffer, frame: Frame): LogRecord<T>;
  /** The error for a frame whose security flags are not the log's. */
  mismatch(offset: number): Error;
}

/** Builds the record of a validated frame held in `reader.buffer`. */
export function recordOf<T>(host: CursorHost<T>, reader: FrameReader, offset: number, frame: Frame): LogRecord<T> {
  const buffer = reader.buffer;
  // A frame of another kind than the log's is never decoded: a plain frame in an encrypted log would hand out
  // unauthenticated bytes, an encrypted one in a plain log ciphertext.
  if ((frame.encrypted ? flagEncrypted : 0) + (frame.chainStart < 0 ? 0 : flagChained) !== host.securityFlags) {
    throw host.mismatch(offset);
  }
  if (frame.encrypted) return host.decrypt(offset, buffer, frame);
  const keyStart = frame.keyStart;
  const key =
    frame.keyLength === 0 ? undefined : Uint8Array.prototype.slice.call(buffer, keyStart, keyStart + frame.keyLength);
  const valueStart = keyStart + frame.keyLength;
  return host.record(offset, buffer, valueStart, valueStart + frame.valueLength, frame.time, key);
}

/**
 * The offset of the first record at or after `low`. A bound that is a record start (or just past one, as
 * `gt: offset` is) is found in O(1); any other bound costs a walk of the frames of one segment.
 */
export function firstRecordAtOrAfter(segments: Segments, reader: FrameReader, low: number): number {
  const first = segments.first;
  if (low <= first) return first;
  const index = segments.indexOf(low);
  const base = segments.bases[index] as number;
  if (low === base) return low;
  if (typeof reader.tryAt(index, low, false) !== 'string') return low;
  const before = reader.tryAt(index, low - 1, false);
  if (typeof before !== 'string') return low - 1 + before.size;
  const end = segments.endOf(index);
  let offset = base;
  while (offset < low && offset < end) offset += reader.at(index, offset, 'record', true).size;
  return offset;
}

/** The end of the last record whose offset is below `high` (so a reverse scan starts there). */
export function lastRecordEndBefore(segments: Segments, reader: FrameReader, high: number): number {
  const first = segments.first;
  if (high >= segments.end) return segments.end;
  if (high <= first) return first;
  const index = segments.indexOf(high);
  const base = segments.bases[index] as number;
  if (high === base) return high;
  if (typeof reader.tryAt(index, high, false) !== 'string') return high;
  const before = reader.tryAt(index, high - 1, false);
  if (typeof before !== 'string') return high - 1 + before.size;
  let offset = base;
  while (offset < high) offset += reader.at(index, offset, 'record', true).size;
  return offset;
}

/**
 * The segment a cursor reads and how many times compaction had rewritten it when the cursor got there (see
 * `Segments.rewritten`): a failed read there is then told apart from damage when the file was swapped since.
 */
class SegmentInUse {
  index = -1;
  #rewrites = 0;

  enter(segments: Segments, index: number): void {
    this.index = index;
    this.#rewrites = segments.rewritesOf(segments.bases[index] as number);
  }

  /** Whether the segment's file was swapped since `enter` (then forgets the reader's window and takes the new count). */
  swapped(segments: Segments, reader: FrameReader): boolean {
    if (this.index < 0) return false;
    const rewrites = segments.rewritesOf(segments.bases[this.index] as number);
    if (rewrites === this.#rewrites) return false;
    this.#rewrites = rewrites;
    reader.reset();
    return true;
  }
}

/** Reads forwards through a chunk window; asked again after reaching the end, it picks up new records. */
export class ForwardCursor<T> implements RecordCursor<T> {
  readonly #host: CursorHost<T>;
  readonly #range: ScanRange;
  #reader: FrameReader | undefined;
  #offset = -1;
  readonly #segment = new SegmentInUse();
  done = false;

  constructor(host: CursorHost<T>, range: ScanRange) {
    this.#host = host;
    this.#range = range;
  }

  next(max: number): LogRecord<T>[] {
    const segments = this.#host.segments;
    if (this.done) return [];
    // Taking in new records checks for a cut as well.
    if (this.#offset >= segments.end || this.#offset < 0) this.#host.refresh();
    else this.#host.check(this.#offset);
    this.#reader ??= new FrameReader(segments);
    const reader = this.#reader;
    if (this.#offset < 0) {
      if (this.#range.low >= segments.end) return [];
      this.#offset = firstRecordAtOrAfter(segments, reader, this.#range.low);
    }
    const records: LogRecord<T>[] = [];
    const limit = Math.min(this.#range.high, segments.end);
    const segment = this.#segment;
    for (;;) {
      try {
        while (records.length < max && this.#offset < limit) {
          if (segment.index < 0 || this.#offset >= segments.endOf(segment.index)) segment.enter(segments, segments.indexOf(this.#offset));
          const frame = reader.at(segment.index, this.#offset, 'record', true);
          // A deleted record keeps its place (F-62): streams step over it.
          if (!frame.deleted) records.push(recordOf(this.#host, reader, this.#offset, frame));
          this.#offset += frame.size;
        }
      } catch (error) {
        if (segment.swapped(segments, reader)) {
          // The next record was compacted away, maybe into the middle of a filler: go on from the first record
          // of the new file at or after it.
          this.#offset = firstRecordAtOrAfter(segments, reader, this.#offset);
          continue;
        }
        // Hand out the good records before the damage; the next call fails at the same place again.
        if (records.length === 0) {
          this.#host.check(this.#offset);
          throw error;
        }
      }
      break;
    }
    if (this.#offset >= this.#range.high) this.done = true;
    return records;
  }

  close(): void {
    this.#reader = undefined;
    this.done = true;
  }
}

/** Reads backwards from the records that exist when it starts. */
export class ReverseCursor<T> implements RecordCursor<T> {
  readonly #host: CursorHost<T>;
  readonly #range: ScanRange;
  #reader: FrameReader | undefined;
  /** The end of the next record to hand out; -1 until the cursor starts. */
  #end = -1;
  #floor = 0;
  readonly #segment = new SegmentInUse();
  done = false;

  constructor(host: CursorHost<T>, range: ScanRange) {
    this.#host = host;
    this.#range = range;
  }

  next(max: number): LogRecord<T>[] {
    const segments = this.#host.segments;
    if (this.#end < 0) {
      this.#host.refresh();
      this.#reader = new FrameReader(segments);
      this.#end = lastRecordEndBefore(segments, this.#reader, this.#range.high);
      this.#floor = Math.max(this.#range.low, segments.first);
    }
    const reader = this.#reader;
    const records: LogRecord<T>[] = [];
    if (reader === undefined || this.done) return records;
    this.#host.check(this.#end - 1);
    for (;;) {
      try {
        while (records.length < max && this.#end > this.#floor) {
          const index = segments.indexOf(this.#end - 1);
          if (index !== this.#segment.index) this.#segment.enter(segments, index);
          const { offset, frame } = reader.endingAt(index, this.#end, 'record');
          if (offset < this.#range.low) {
            this.#end = this.#floor;
            break;
          }
          if (!frame.deleted) records.push(recordOf(this.#host, reader, offset, frame));
          this.#end = offset;
        }
      } catch (error) {
        if (this.#segment.swapped(segments, reader)) {
          // Compaction swapped the segment's file: the place reached may now lie inside a filler, whose end is
          // the next place to read back from (the filler itself is stepped over, as deleted).
          this.#end = lastRecordEndBefore(segments, reader, this.#end);
          continue;
        }
        if (records.length === 0) {
          this.#host.check(this.#end - 1);
          throw error;
        }
      }
      break;
    }
    if (this.#end <= this.#floor) this.done = true;
    return records;
  }

  close(): void {
    this.#reader = undefined;
    this.done = true;
  }
}

import { readSync } from 'node:fs';
import { SluiceError } from '../../errors.js';
import { scanChunkBytes, valueBytesMax } from '../../limits.js';
import { frameProblem, overheadBytes, readEnd, type OffsetWidth } from './format.js';

/** A validated frame: where its payload sits in the window's buffer. */
export interface FrameSpan {
  /** The frame's position in the file (the record's offset). */
  readonly start: number;
  /** The payload's length. */
  readonly length: number;
  /** Where the payload starts in `FrameWindow.buffer`. */
  readonly at: number;
}

/**
 * A window of bytes over a flumelog-offset file, read with synchronous positioned reads (a page-cache read takes
 * microseconds; a thread-pool round trip costs more than the read). It finds and validates frames forwards
 * (`at`) and backwards (`endingAt`), refilling itself when a frame is not wholly inside it. A length read from
 * the file is checked against the file's end and the largest record before anything is allocated for it.
 */
export class FrameWindow {
  buffer: Buffer;
  /** The file position of `buffer[0]`. */
  #start = 0;
  /** How many bytes of `buffer` hold file data. */
  #filled = 0;

  /** How much one read fetches: a scan's window (256 KiB), or a `get`'s (1 KiB, most records fit). */
  readonly #windowBytes: number;

  constructor(
    readonly fd: number,
    readonly file: string,
    readonly width: OffsetWidth,
    windowBytes: number = scanChunkBytes,
  ) {
    this.#windowBytes = windowBytes;
    this.buffer = Buffer.allocUnsafe(windowBytes);
  }

  /** Forgets what was read (after the file changed under the window: a delete, a truncation). */
  reset(): void {
    this.#filled = 0;
  }

  /**
   * The frame at `start`, which must end at or before `end` (the visible end of the file), or a description of
   * why there is none.
   */
  tryAt(start: number, end: number): FrameSpan | string {
    if (start + 4 > end) return 'the file ends inside a record length';
    let at = this.#cover(start, start + 4, end);
    if (this.#filled - at < 4) return 'the file ends inside a record length';
    const length = this.buffer.readUInt32BE(at);
    const frameEnd = start + length + overheadBytes(this.width);
    if (length <= valueBytesMax && frameEnd <= end) at = this.#cover(start, frameEnd, end);
    const problem = frameProblem(this.buffer, at, Math.min(this.#filled - at, end - start), start, this.width, valueBytesMax);
    return problem ?? { start, length, at: at + 4 };
  }

  /** As `tryAt`, throwing `CORRUPT_RECORD` (with the file and position) when there is no valid frame. */
  at(start: number, end: number): FrameSpan {
    const frame = this.tryAt(start, end);
    if (typeof frame === 'string') throw this.corrupt(start, frame);
    return frame;
  }

  /** The frame that ends exactly at `end` (reading backwards), or why there is none. `floor` is the lowest start. */
  tryEndingAt(end: number, floor = 0): FrameSpan | string {
    const width = this.width;
    if (end - floor < overheadBytes(width)) return 'no record ends here';
    const trailerAt = this.#cover(end - 4 - width, end, end);
    if (this.#filled - trailerAt < 4 + width) return 'the file ends early';
    // The end field is the cheap, strong test: a walk back over damage tries it at every byte.
    if (width !== 0 && readEnd(this.buffer, trailerAt + 4, width) !== end) return 'no record ends here';
    const length = this.buffer.readUInt32BE(trailerAt);
    const start = end - length - overheadBytes(width);
    if (length > valueBytesMax || start < floor) return `the length ${length} before position ${end} points outside the file`;
    const frame = this.tryAt(start, end);
    if (typeof frame === 'string') return frame;
    return frame.start + frame.length + overheadBytes(width) === end ? frame : 'no record ends here';
  }

  /** The file's bytes `[from, to)` (at most the window's size), as a view valid until the next read. */
  bytes(from: number, to: number): Buffer {
    const at = this.#cover(from, to, to);
    return this.buffer.subarray(at, Math.min(this.#filled, at + to - from));
  }

  corrupt(position: number, problem: string): SluiceError {
    return new SluiceError('CORRUPT_RECORD', `${this.file}: no valid record at position ${position}: ${problem}`, {
      file: this.file,
      position,
      offset: position,
    });
  }

  /**
   * Makes the window hold file bytes `[from, to)` (never past `end`) and returns where `from` is in the buffer.
   * The window is placed to serve the next reads of the same direction: forwards from `from`, or backwards
   * ending at `to` when `to` is before the window.
   */
  #cover(from: number, to: number, end: number): number {
    if (from >= this.#start && to <= this.#start + this.#filled) return from - this.#start;
    const needed = to - from;
    if (needed > this.buffer.length) this.buffer = Buffer.allocUnsafe(Math.max(needed, this.buffer.length * 2));
    const readBytes = Math.max(needed, this.#windowBytes);
    const backwards = this.#filled > 0 && from < this.#start;
    let windowStart = backwards ? Math.max(0, to - readBytes) : from;
    if (windowStart > from) windowStart = from;
    const windowBytes = Math.min(readBytes, end - windowStart);
    this.#start = windowStart;
    this.#filled = 0;
    while (this.#filled < windowBytes) {
      let read: number;
      try {
        read = readSync(this.fd, this.buffer, this.#filled, windowBytes - this.#filled, windowStart + this.#filled);
      } catch (error) {
        throw new SluiceError('READ_FAILED', `${this.file}: reading at position ${windowStart + this.#filled} failed`, {
          cause: error,
          file: this.file,
          position: windowStart + this.#filled,
        });
      }
      if (read === 0) break;
      this.#filled += read;
    }
    return from - this.#start;
  }
}

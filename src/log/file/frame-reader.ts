import { SluiceError } from '../../errors.js';
import { getReadBytes, scanChunkBytes } from '../../limits.js';
import { ReadBuffer } from '../../checksum/crc32c-wasm.js';
import { checksumMismatch, emptyFrame, fillerNotDeleted, parseFrame, positionOf, segmentName, type Frame } from './format.js';
import type { Segments } from './segments.js';

const endsInsideFrame = 'the segment ends inside the frame';

/** What a read expects to find at an offset; decides how a bad frame is reported. */
export type Expectation =
  /** The caller knows a record starts here (a scan): anything else is corruption. */
  | 'record'
  /** The caller merely asks (a `get`, a bound): a bad frame means "no record starts here". */
  | 'maybe';

/**
 * Reads and validates frames through a chunk buffer: a window of one segment's bytes. Sequential readers keep
 * the window and read ahead; random readers (`get`) read just enough. Every frame is checked against F-12
 * before anything of it is used, and nothing past the segment's visible end is ever read.
 */
export class FrameReader {
  readonly #segments: Segments;
  readonly #chunkBytes: number;
  readonly #read: ReadBuffer;
  /** The window: `buffer[0, length)` holds segment `index`'s bytes starting at log offset `start`. */
  #index = -1;
  #start = 0;
  #length = 0;
  readonly frame: Frame = emptyFrame();

  constructor(segments: Segments, chunkBytes = scanChunkBytes) {
    this.#segments = segments;
    this.#chunkBytes = chunkBytes;
    this.#read = new ReadBuffer(chunkBytes);
  }

  /** The bytes of the window (see `positionOf`). */
  get buffer(): Buffer {
    return this.#read.buffer;
  }

  /** Position in `buffer` of log offset `offset` (valid right after `at` / `endingAt` for that frame). */
  positionOf(offset: number): number {
    return offset - this.#start;
  }

  /** Forgets the window (the file changed under it, for example after a truncation). */
  reset(): void {
    this.#index = -1;
    this.#length = 0;
  }

  /**
   * Validates the frame of the record at `offset` in segment `index` and returns it (positions relative to
   * `buffer`), or throws: `NOT_A_RECORD` or `CORRUPT_RECORD` for `maybe`, `CORRUPT_RECORD` for `record`.
   * `readAhead` keeps reading whole chunks forward (scans); otherwise only about one record is read.
   */
  at(index: number, offset: number, expect: Expectation, readAhead: boolean): Frame {
    const result = this.tryAt(index, offset, readAhead);
    if (typeof result !== 'string') return result;
    throw this.#error(index, offset, result, expect);
  }

  /**
   * As `at`, but returns the reason instead of throwing when no valid frame starts at `offset`. On a read-only log,
   * or a writer whose delete failed (`Segments.deletionPending`), a frame that fails only its checksum where a
   * deletion is in progress is returned as deleted: it is that record half rewritten (F-63).
   */
  tryAt(index: number, offset: number, readAhead: boolean): Frame | string {
    const parsed = this.#parseAt(index, offset, readAhead);
    if (parsed !== checksumMismatch || this.#segments.deletionPending === undefined) return parsed;
    return this.#halfDeleted(index, offset, readAhead);
  }

  /**
   * A frame at `offset` failed only its checksum where deletions may be half done. A deletion rewrites a frame in
   * place with one write, keeping its framing, offset, time, key length and flags but for *deleted* (F-62); another
   * process reads that write half done while the writer is at work, and after a crash until a writer's open
   * finishes it; the writer itself reads it so after that write failed. Read
   * as damage, a record deleted or about to be would fail every read and scan that meets it. The journal naming
   * the offset says it is such a rewrite: the frame is the deleted record, whatever its key and value bytes hold.
   */
  #halfDeleted(index: number, offset: number, readAhead: boolean): Frame | string {
    if ((this.#segments.deletionPending as (offset: number) => boolean)(offset)) {
      // The window still holds the whole frame: the first parse checked all but the checksum on it.
      const position = offset - this.#start;
      const available = Math.min(this.#length - position, this.#segments.endOf(index) - offset);
      const frame = parseFrame(this.buffer, position, available, offset, this.frame, null);
      // A filler is never erased (F-76): a filler failing its checksum is damage, journal or not.
      if (typeof frame === 'string' || 'needBytes' in frame || frame.filler) return checksumMismatch;
      frame.deleted = true;
      return frame;
    }
    // The writer removes the journal once its rewrites are durable: a rewrite read half done just before that
    // reads whole now. Anything else still failing is damage.
    this.reset();
    return this.#parseAt(index, offset, readAhead);
  }

  #parseAt(index: number, offset: number, readAhead: boolean): Frame | string {
    const limit = this.#segments.endOf(index);
    if (offset >= limit) return 'the offset is past the end of the segment';
    let need = 4;
    for (;;) {
      if (!this.#covers(index, offset, need)) {
        const want = readAhead ? Math.max(this.#chunkBytes, need) : Math.max(getReadBytes, need);
        this.#fill(index, offset, Math.min(want, limit - offset));
        if (this.#start + this.#length < offset + need) return endsInsideFrame;
      }
      const position = offset - this.#start;
      const available = Math.min(this.#length - position, limit - offset);
      const parsed = parseFrame(this.buffer, position, available, offset, this.frame, this.#read.checksum);
      if (typeof parsed === 'string' || !('needBytes' in parsed)) return parsed;
      if (parsed.needBytes <= need) return endsInsideFrame;
      need = parsed.needBytes;
    }
  }

  /**
   * Validates the frame that ends at `end` (reading backwards), as `at` does. The window is filled backwards
   * so that a reverse scan reads whole chunks.
   */
  endingAt(index: number, end: number, expect: Expectation): { offset: number; frame: Frame } {
    const base = this.#segments.bases[index] as number;
    if (end - 4 < base) throw this.#error(index, end, 'no frame ends here', expect);
    if (!this.#covers(index, end - 4, 4)) this.#fillBackwards(index, end, end - this.#chunkBytes);
    if (!this.#covers(index, end - 4, 4)) throw this.#error(index, end - 4, 'the segment ends before this position', expect);
    const size = this.buffer.readUInt32LE(end - 4 - this.#start);
    const offset = end - size;
    if (offset < base || size < 4) {
      throw this.#error(index, end - 4, 'the frame length points outside the segment', expect);
    }
    if (!this.#covers(index, offset, size)) this.#fillBackwards(index, end, offset);
    const frame = this.at(index, offset, expect, false);
    // The bytes before `end` may merely look like a trailing length (a torn write's): the frame they point at
    // must itself end at `end`.
    if (frame.size !== size) throw this.#error(index, end - 4, 'no frame ends here', expect);
    return { offset, frame };
  }

  #covers(index: number, offset: number, bytes: number): boolean {
    if (index !== this.#index || offset < this.#start || offset + bytes > this.#start + this.#length) return false;
    // Buffered durability: the window may hold bytes copied from the writer's chunks before they were written.
    // Once the write failed they are lost: past the written end the window is no longer believed, and the read
    // goes to `Segments.read`, which fails there with the write's error.
    const tail = this.#segments.tail;
    return tail === undefined || tail.failure === undefined || offset + bytes <= tail.writtenEnd;
  }

  #fill(index: number, offset: number, bytes: number): void {
    const buffer = this.#read.fit(bytes);
    const base = this.#segments.bases[index] as number;
    // The window is claimed only once the read succeeded: a failed read (an I/O error, a trimmed segment) must
    // not leave the old bytes posing as the new position's, for the retry to parse.
    this.reset();
    const length = this.#segments.read(index, positionOf(base, offset), buffer, 0, bytes);
    this.#index = index;
    this.#start = offset;
    this.#length = length;
  }

  /** Fills the window with `[start, end)`, reading back to `lowest` and at least a chunk when there is one. */
  #fillBackwards(index: number, end: number, lowest: number): void {
    const base = this.#segments.bases[index] as number;
    const start = Math.max(base, Math.min(lowest, end - this.#chunkBytes));
    this.#fill(index, start, end - start);
  }

  #error(index: number, offset: number, reason: string, expect: Expectation): SluiceError {
    const base = this.#segments.bases[index] as number;
    const file = this.#segments.path(base);
    const position = positionOf(base, offset);
    const shortEnd = this.#segments.shortEndOf(index);
    if (shortEnd !== undefined && (offset >= shortEnd || reason === endsInsideFrame)) {
      // At or past the end of a sealed segment's file that stops short of the next segment: the offsets up to it
      // are in no file (F-8). Whatever the read expected, the log has lost them: its files contradict each other.
      const next = this.#segments.endOf(index);
      return new SluiceError(
        'CORRUPT_LOG',
        `no file holds offsets ${shortEnd} to ${next}, where ${file} ends and the next segment starts ` +
          `(${segmentName(shortEnd)} is missing, or ${segmentName(base)} was cut short)`,
        { file, position: positionOf(base, shortEnd), offset },
      );
    }
    // A checksum failure (or a filler not deleted) behind intact framing means the record is there but damaged,
    // whatever was expected.
    const damaged = expect === 'record' || reason === checksumMismatch || reason === fillerNotDeleted;
    const code = damaged ? 'CORRUPT_RECORD' : 'NOT_A_RECORD';
    const what = damaged ? 'corrupt record' : 'no record starts';
    return new SluiceError(code, `${what} at offset ${offset} (${file} position ${position}): ${reason}`, {
      file,
      position,
      offset,
    });
  }
}

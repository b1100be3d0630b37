import { readSync } from 'node:fs';
import { ReadBuffer } from '../checksum/crc32c-wasm.js';
import { SluiceError } from '../errors.js';
import { emptyFrame, flagBatchContinues, frameBytesMin, parseFrame, readU64, type Frame } from '../log/file/format.js';

/**
 * A window over one open segment file for whole-file passes (`check`, `recover`): bytes are read in large
 * chunks, and each frame is validated by `parseFrame` (F-12) exactly as the log's own readers validate it. Unlike
 * `FrameReader` it works on a file that is not (or not yet) part of an open log, stops at a given file position
 * rather than at the log's visible end, and can look for the next valid frame after damage without reading far
 * ahead for every byte it tries.
 */
export class SegmentWindow {
  readonly #fd: number;
  readonly #path: string;
  /** File position past which nothing is read. */
  readonly #end: number;
  readonly #chunkBytes: number;
  readonly #read: ReadBuffer;
  readonly #checksums: boolean;
  /** The window: `buffer[0, #length)` holds the file's bytes from position `#start`. */
  #start = 0;
  #length = 0;
  readonly #frame: Frame = emptyFrame();

  /**
   * `checksums: false` checks the framing of frames only (rule 5 left out), for a pass that proves their content
   * otherwise (the chain's digests, F-77).
   */
  constructor(fd: number, path: string, end: number, chunkBytes: number, checksums = true) {
    this.#fd = fd;
    this.#path = path;
    this.#end = end;
    this.#chunkBytes = chunkBytes;
    this.#checksums = checksums;
    this.#read = new ReadBuffer(Math.max(0, Math.min(chunkBytes, end)), checksums);
  }

  /** The bytes the positions of the last frame returned refer to. */
  get buffer(): Buffer {
    return this.#read.buffer;
  }

  /**
   * The valid frame at file `position` for log `offset`, or the reason there is none (F-12). The frame's parts
   * are positions in a buffer that the next call may reuse.
   */
  frameAt(position: number, offset: number): Frame | string {
    let need = 4;
    for (;;) {
      if (position < this.#start || position + need > this.#start + this.#length) {
        this.#fill(position, need);
        if (this.#length < need) return 'the segment ends inside the frame';
      }
      const at = position - this.#start;
      const parsed = parseFrame(this.buffer, at, this.#length - at, offset, this.#frame, this.#checksums ? this.#read.checksum : null);
      if (typeof parsed === 'string' || !('needBytes' in parsed)) return parsed;
      if (parsed.needBytes <= need) return 'the segment ends inside the frame';
      need = parsed.needBytes;
    }
  }

  /**
   * True when a valid frame for `offset` starts at `position`. Meant for trying every position after damage:
   * a position whose offset field (F-10) names another offset is rejected from the bytes at hand, so a random
   * length there never makes the window read megabytes ahead.
   */
  frameStartsAt(position: number, offset: number): boolean {
    if (position + frameBytesMin > this.#end) return false;
    if (position < this.#start || position + 16 > this.#start + this.#length) {
      this.#fill(position, frameBytesMin);
      if (this.#length < frameBytesMin) return false;
    }
    if (readU64(this.buffer, position - this.#start + 8) !== offset) return false;
    return typeof this.frameAt(position, offset) !== 'string';
  }

  /**
   * The size and batch flag of the frame at `position`, right after `frameAt` found it failing its checksum only
   * (`checksumMismatch`: every other rule of F-12 held, so the lengths at both ends and the offset are intact).
   * For a record whose deletion (F-62, F-63) a crash or a running writer left half rewritten: its framing is
   * the record's, only its bytes are in flux.
   */
  framingAt(position: number): { size: number; batchContinues: boolean } {
    const at = position - this.#start;
    const size = this.buffer.readUInt32LE(at);
    return { size, batchContinues: ((this.buffer[at + 26] as number) & flagBatchContinues) !== 0 };
  }

  #fill(position: number, bytes: number): void {
    const want = Math.max(0, Math.min(Math.max(bytes, this.#chunkBytes), this.#end - position));
    const buffer = this.#read.fit(want);
    let done = 0;
    try {
      while (done < want) {
        const read = readSync(this.#fd, buffer, done, want - done, position + done);
        if (read === 0) break;
        done += read;
      }
    } catch (error) {
      throw new SluiceError('READ_FAILED', `cannot read ${this.#path}: ${(error as Error).message}`, {
        cause: error,
        file: this.#path,
        position: position + done,
      });
    }
    this.#start = position;
    this.#length = done;
  }
}

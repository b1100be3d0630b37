import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';

/** How often a read-only log looks whether a segment's file was swapped by its writer (`Segments.followsWriter`). */
const replacedCheckMs = 100;
import { join } from 'node:path';
import { SluiceError } from '../../errors.js';
import { fileModeDefault, openSegmentsMax } from '../../limits.js';
import { decodeHeader, headerBytes, offsetAt, segmentName, type SegmentHeader } from './format.js';

/**
 * The ordered set of a log's segment files, and synchronous positional reads from them.
 *
 * Reads are synchronous on purpose: a page-cache read of a few hundred bytes takes about 2 µs with `readSync`
 * but about 60 µs through the thread pool, and sequential synchronous reads make a small cache of open file
 * descriptors safe (nothing can be closed under an in-flight read). Headers of sealed segments are checked the
 * first time a segment is opened, so opening a log never touches more than its last segment.
 */
/** Records acknowledged before they were written (buffered durability): reads past `writtenEnd` come from here. */
export interface UnwrittenTail {
  readonly writtenEnd: number;
  readonly failure: Error | undefined;
  copy(offset: number, buffer: Buffer, at: number, length: number): number;
}

export class Segments {
  readonly dir: string;
  /**
   * Base offsets, ascending; the last entry is the active (or, read-only, the newest) segment. Trimmed segments
   * keep their entries (indexes stay valid for readers holding them) but lie before `first`.
   */
  readonly bases: number[];
  /** The first available offset: the base of the oldest segment not trimmed (F-60). */
  first: number;
  /** Offset just past the last visible record: the end of the last segment's readable data. */
  end: number;
  readonly #open = new Map<number, number>();
  #pinned: { base: number; fd: number } | undefined;
  /** Set by a writer in buffered mode. */
  tail: UnwrittenTail | undefined;
  /**
   * Called with the header of each segment file opened for reading, which it may refuse by throwing: F-70 has every
   * segment of a log secured alike, and the file log holds what its segments must say.
   */
  headerCheck: ((header: SegmentHeader, path: string) => void) | undefined;
  /**
   * Set on a read-only log: whether the `DELETES` journal (F-63) names `offset`, that is, whether a deletion of the
   * record there is in progress (a writer at work, or one a crash interrupted and no writer has finished yet). A
   * frame there that fails only its checksum is then read as deleted (see `FrameReader.tryAt`). Set on a writer
   * after a delete failed, for that delete's offsets.
   */
  deletionPending: ((offset: number) => boolean) | undefined;

  /** The mode of files created in the log directory (`FileLogOptions.fileMode`). */
  readonly fileMode: number;

  constructor(dir: string, bases: number[], end: number, fileMode = fileModeDefault) {
    this.dir = dir;
    this.fileMode = fileMode;
    this.bases = bases;
    this.end = end;
    this.first = bases[0] ?? 0;
  }

  /** The index of the oldest segment not trimmed. */
  get firstIndex(): number {
    return Math.max(0, this.indexOf(this.first));
  }

  /**
   * Marks the segments before index `keep` trimmed: reads of their offsets fail with `OFFSET_OUT_OF_RANGE` from
   * now on, and their cached descriptors are closed (the caller then removes the files).
   */
  trimBefore(keep: number): void {
    const base = this.bases[keep];
    if (base === undefined || base <= this.first) return;
    for (let index = this.firstIndex; index < keep; index++) this.forget(this.bases[index] as number);
    this.first = base;
  }

  path(base: number): string {
    return join(this.dir, segmentName(base));
  }

  /** The index of the segment that holds `offset` (the last one whose base is ≤ offset), or -1. */
  indexOf(offset: number): number {
    const bases = this.bases;
    let low = 0;
    let high = bases.length - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if ((bases[middle] as number) <= offset) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found;
  }

  /** The offset just past the last record of segment `index` (the next segment's base; `end` for the last). */
  endOf(index: number): number {
    return index + 1 < this.bases.length ? (this.bases[index + 1] as number) : this.end;
  }

  /**
   * The offset at which the file of segment `index` ends, when it is sealed (not the last) and its file ends
   * before the next segment's base (F-8): no file holds the offsets in between. `undefined` otherwise. For error
   * reports: it looks at the file's size.
   */
  shortEndOf(index: number): number | undefined {
    if (index + 1 >= this.bases.length) return undefined;
    const base = this.bases[index] as number;
    let size: number;
    try {
      size = fstatSync(this.#fd(base)).size;
    } catch {
      return undefined;
    }
    const fileEnd = offsetAt(base, Math.max(headerBytes, size));
    return fileEnd < this.endOf(index) ? fileEnd : undefined;
  }

  /** Lets the writer share its descriptor for the active segment (never closed by the cache). */
  pin(base: number, fd: number): void {
    this.#pinned = { base, fd };
  }

  /** Reads up to `length` bytes at `position` of segment `index` into `buffer`; returns the bytes read. */
  read(index: number, position: number, buffer: Buffer, bufferOffset: number, length: number): number {
    const base = this.bases[index] as number;
    const tail = this.tail;
    const offset = base + position - headerBytes;
    const fromFile = tail === undefined ? length : Math.max(0, Math.min(length, tail.writtenEnd - offset));
    const done = fromFile === 0 ? 0 : this.#readFile(base, position, buffer, bufferOffset, fromFile);
    if (tail === undefined || done < fromFile || fromFile === length) return done;
    // Bytes the writer acknowledged but has not written yet (they may even belong to a segment it has not
    // created yet: offsets run on across segments, so the position still names them).
    // After a failed write those bytes are gone: hand out what the file has, and fail only past it.
    if (tail.failure !== undefined) {
      if (done > 0) return done;
      throw tail.failure;
    }
    return done + tail.copy(offset + done, buffer, bufferOffset + done, length - done);
  }

  #readFile(base: number, position: number, buffer: Buffer, bufferOffset: number, length: number): number {
    const fd = this.#fd(base);
    let done = 0;
    try {
      while (done < length) {
        const read = readSync(fd, buffer, bufferOffset + done, length - done, position + done);
        if (read === 0) break;
        done += read;
      }
    } catch (error) {
      throw readFailed(this.path(base), position + done, error);
    }
    return done;
  }

  #fd(base: number): number {
    if (this.#pinned?.base === base) return this.#pinned.fd;
    if (base < this.first) throw trimmed(this.path(base), base, this.first);
    const cached = this.#open.get(base);
    if (cached !== undefined && !(this.followsWriter && this.#replacedElsewhere(base, cached))) {
      // Re-insert so the Map's order is least recently used first.
      this.#open.delete(base);
      this.#open.set(base, cached);
      return cached;
    }
    const path = this.path(base);
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      // Another process may have trimmed the log: segments vanish from the front only (F-60), so a missing
      // segment with no older one left is trimmed, and any other missing segment is damage.
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && this.#trimmedElsewhere(base)) throw trimmed(path, base, this.first);
      // A missing segment is damage; any other failure to open one (EIO, EMFILE) is an I/O error, not a verdict.
      if (code !== 'ENOENT') throw readFailed(path, 0, error);
      throw new SluiceError('CORRUPT_LOG', `segment ${path} is missing`, { cause: error, file: path });
    }
    try {
      this.headerCheck?.(checkHeader(fd, path, base), path);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    this.#open.set(base, fd);
    if (this.#open.size > openSegmentsMax) {
      const [oldestBase, oldestFd] = this.#open.entries().next().value as [number, number];
      this.#open.delete(oldestBase);
      closeSync(oldestFd);
    }
    return fd;
  }

  /**
   * Set on a read-only log: the writer in another process may swap a segment's file (a delete in a segment that a
   * backup shares is written to a copy renamed over it; a compaction too). Looked at once every
   * `replacedCheckMs` per segment, so a reader sees such a change that soon at the latest.
   */
  followsWriter = false;
  readonly #replacedCheckedMs = new Map<number, number>();

  /** Whether the file at the segment's path is no longer the one `fd` reads (then counted as rewritten). */
  #replacedElsewhere(base: number, fd: number): boolean {
    const now = Date.now();
    if (now - (this.#replacedCheckedMs.get(base) ?? 0) < replacedCheckMs) return false;
    this.#replacedCheckedMs.set(base, now);
    let replaced: boolean;
    try {
      replaced = statSync(this.path(base)).ino !== fstatSync(fd).ino;
    } catch {
      // Gone (trimmed): the descriptor still reads what it read; the next open reports the trim.
      return false;
    }
    // A compaction may have merged records into fillers: cursors inside the segment find their place again.
    if (replaced) this.rewritten(base);
    return replaced;
  }

  /** True when no segment older than `base` exists any more (it and they were trimmed); moves `first` on. */
  #trimmedElsewhere(base: number): boolean {
    let index = this.indexOf(base);
    for (let older = this.firstIndex; older < index; older++) {
      if (existsSync(this.path(this.bases[older] as number))) return false;
    }
    while (index + 1 < this.bases.length && !existsSync(this.path(this.bases[index] as number))) index++;
    this.trimBefore(index);
    return true;
  }

  /**
   * Compaction swapped in a new file for the segment at `base` (runs of dropped records became fillers, F-64):
   * closes its descriptor, and counts the rewrite so that a cursor inside it finds its place again.
   */
  rewritten(base: number): void {
    this.forget(base);
    this.#rewrites.set(base, this.rewritesOf(base) + 1);
  }

  /** How many times compaction rewrote the segment at `base` while this log was open. */
  rewritesOf(base: number): number {
    return this.#rewrites.get(base) ?? 0;
  }

  readonly #rewrites = new Map<number, number>();

  /** Closes cached descriptors of segments that no longer exist or are about to be replaced. */
  forget(base: number): void {
    const fd = this.#open.get(base);
    if (fd === undefined) return;
    this.#open.delete(base);
    closeSync(fd);
  }

  close(): void {
    for (const fd of this.#open.values()) closeSync(fd);
    this.#open.clear();
    this.#pinned = undefined;
  }
}

function trimmed(path: string, base: number, first: number): SluiceError {
  return new SluiceError('OFFSET_OUT_OF_RANGE', `the records of ${path} were trimmed: the log now starts at ${first}`, {
    file: path,
    offset: base,
  });
}

function readFailed(path: string, position: number, cause: unknown): SluiceError {
  return new SluiceError('READ_FAILED', `cannot read ${path}: ${(cause as Error).message}`, { cause, file: path, position });
}

/** Reads and validates the header of an open segment file (F-6, F-7); throws CORRUPT_SEGMENT, or READ_FAILED. */
export function checkHeader(fd: number, path: string, base: number): SegmentHeader {
  const header = Buffer.alloc(headerBytes);
  let read: number;
  try {
    read = readSync(fd, header, 0, headerBytes, 0);
  } catch (error) {
    throw readFailed(path, 0, error);
  }
  const decoded = decodeHeader(header.subarray(0, read));
  if (typeof decoded === 'string') {
    throw new SluiceError('CORRUPT_SEGMENT', `${path}: ${decoded}`, { file: path, position: 0 });
  }
  if (decoded.base !== base) {
    throw new SluiceError('CORRUPT_SEGMENT', `${path}: the header says base offset ${decoded.base}`, {
      file: path,
      position: 16,
    });
  }
  return decoded;
}

import { closeSync, fstatSync, openSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isSluiceError, SluiceError } from '../errors.js';
import { checkChunkBytes, getReadBytes } from '../limits.js';
import { checksumMismatch, headerBytes, offsetAt, positionOf, segmentName } from '../log/file/format.js';
import { listDirectory } from '../log/file/segment-files.js';
import { checkHeader } from '../log/file/segments.js';
import type { ProgressMeter } from '../progress/meter.js';
import { SegmentWindow } from './segment-window.js';

/**
 * One pass over every record of a native log's segments, shared by `check` (which reports what it finds) and
 * `recover` (which cuts the log back to its longest valid prefix). The pass validates each segment's header
 * (F-6, F-7) and every frame (F-12) in order, and after damage looks for the next valid frame, so that one
 * damaged record does not hide the rest of a segment.
 */

/** A stretch of a segment where frames are not valid. */
export interface Damage {
  /** The offset where a record was expected, and its position in the file. */
  readonly offset: number;
  readonly position: number;
  /** What is wrong there (F-12's wording, as `parseFrame` gives it). */
  readonly reason: string;
  /** The offset of the next valid frame in the segment, or `undefined` when none follows. */
  readonly resumesAt: number | undefined;
}

/** What the pass found in one segment file. Offsets are log offsets (F-4); positions are bytes in the file. */
export interface SegmentScan {
  readonly base: number;
  readonly path: string;
  /** The file's size when it was opened; `-1` when it was listed but gone by the time it was read. */
  readonly fileBytes: number;
  /** Why the header is invalid; the records of such a segment are not read. */
  readonly headerProblem: SluiceError | undefined;
  /** The offset records were read up to: the file's end, or the next segment's base when the file is longer. */
  readonly scanEnd: number;
  /** Valid records read (after damage too). */
  readonly records: number;
  /**
   * The end of the last whole batch in the run of valid frames from the segment's start, its last record (`-1`:
   * none), and the number of records up to there.
   */
  readonly batchEnd: number;
  readonly batchSince: number;
  readonly batchRecords: number;
  readonly damages: readonly Damage[];
  /**
   * Records whose deletion is in progress (listed in the `DELETES` journal, F-63) and whose frame fails only its
   * checksum: a rewrite a crash interrupted (or a writer is making). They count as records, not damage: the next
   * writable open finishes the deletion.
   */
  readonly erasing: readonly number[];
  /** The last valid frame before `scanEnd` continues its batch: the segment ends inside a batch. */
  readonly endsInsideBatch: boolean;
}

/** The longest valid prefix of the log: whole batches from the first segment, with no gap or damage before. */
export interface ValidPrefix {
  /** The index in `segments` of the last segment holding part of the prefix; `-1` when no segment does. */
  readonly lastSegment: number;
  /** The offset just past the prefix's last record: where the log ends once recovered. */
  readonly end: number;
  /** The prefix's last record; `-1` when it holds none. */
  readonly since: number;
  readonly records: number;
}

export interface LogScan {
  readonly dir: string;
  /** The segments, in offset order; segments dropped from the front while the pass ran are left out. */
  readonly segments: readonly SegmentScan[];
  readonly prefix: ValidPrefix;
  readonly bytes: number;
  readonly records: number;
}

export interface ScanOptions {
  readonly signal: AbortSignal | undefined;
  readonly meter: ProgressMeter;
  /** What the operation is called in an `ABORTED` message. */
  readonly operation: string;
  /** The offsets of the `DELETES` journal (F-63): deletions in progress. */
  readonly erasing: ReadonlySet<number>;
}

/**
 * Reads every segment in `bases` (a listing taken just before). A segment's size is taken when it is opened and
 * nothing past it is read, so a writer may append meanwhile: the pass sees the log as it was at that moment,
 * possibly with a write in flight at the end. Yields to the event loop after every chunk; `signal` aborts the
 * pass with `ABORTED` there.
 */
export async function scanLog(dir: string, bases: readonly number[], options: ScanOptions): Promise<LogScan> {
  const progress = new PassProgress(options);
  await progress.measure(dir, bases);
  let segments: SegmentScan[] = [];
  for (let i = 0; i < bases.length; i++) {
    segments.push(await scanSegment(dir, bases[i] as number, bases[i + 1], progress, options.erasing));
  }
  // Retention may have dropped segments from the front while we read: those are no longer part of the log.
  const now = await listDirectory(dir);
  const first = now?.bases[0];
  if (first !== undefined) segments = segments.filter((segment) => segment.base >= first);
  const records = segments.reduce((sum, segment) => sum + segment.records, 0);
  progress.finish(records);
  return { dir, segments, prefix: validPrefix(segments), bytes: progress.bytesDone, records };
}

async function scanSegment(
  dir: string,
  base: number,
  nextBase: number | undefined,
  progress: PassProgress,
  erasing: ReadonlySet<number>,
): Promise<SegmentScan> {
  const path = join(dir, segmentName(base));
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw readFailure(path, error);
    return { ...emptyScan(base, path, base), fileBytes: -1 };
  }
  try {
    const fileBytes = fstatSync(fd).size;
    const fileEnd = offsetAt(base, Math.max(fileBytes, headerBytes));
    const scanEnd = nextBase === undefined ? fileEnd : Math.min(fileEnd, nextBase);
    try {
      checkHeader(fd, path, base);
    } catch (error) {
      if (!isSluiceError(error, 'CORRUPT_SEGMENT')) throw error;
      progress.advance(fileBytes);
      return { ...emptyScan(base, path, scanEnd), fileBytes, headerProblem: error };
    }
    const window = new SegmentWindow(fd, path, positionOf(base, scanEnd), checkChunkBytes);
    const scan = await walk(window, base, scanEnd, progress, erasing);
    progress.advance(fileBytes - positionOf(base, scanEnd) + headerBytes);
    return { base, path, fileBytes, headerProblem: undefined, scanEnd, ...scan };
  } finally {
    closeSync(fd);
  }
}

function emptyScan(base: number, path: string, scanEnd: number): SegmentScan {
  return {
    base,
    path,
    fileBytes: 0,
    headerProblem: undefined,
    scanEnd,
    records: 0,
    batchEnd: base,
    batchSince: -1,
    batchRecords: 0,
    damages: [],
    erasing: [],
    endsInsideBatch: false,
  };
}

type WalkResult = Pick<
  SegmentScan,
  'records' | 'batchEnd' | 'batchSince' | 'batchRecords' | 'damages' | 'erasing' | 'endsInsideBatch'
>;

/** Validates the frames of one segment from its base to `scanEnd`, resynchronising after damage. */
async function walk(
  window: SegmentWindow,
  base: number,
  scanEnd: number,
  progress: PassProgress,
  erasingOffsets: ReadonlySet<number>,
): Promise<WalkResult> {
  const damages: Damage[] = [];
  const erasing: number[] = [];
  let offset = base;
  let records = 0;
  let batchEnd = base;
  let batchSince = -1;
  let batchRecords = 0;
  let continues = false;
  let pauseAt = base + checkChunkBytes;
  while (offset < scanEnd) {
    if (offset >= pauseAt) {
      await progress.pause(base, offset, records);
      pauseAt = offset + checkChunkBytes;
    }
    let frame: { size: number; batchContinues: boolean } | string = window.frameAt(positionOf(base, offset), offset);
    if (frame === checksumMismatch && erasingOffsets.has(offset)) {
      frame = window.framingAt(positionOf(base, offset));
      erasing.push(offset);
    }
    if (typeof frame === 'string') {
      const resumesAt = await resynchronise(window, base, offset + 1, scanEnd, progress, records);
      damages.push({ offset, position: positionOf(base, offset), reason: frame, resumesAt });
      continues = false;
      if (resumesAt === undefined) break;
      offset = resumesAt;
      continue;
    }
    records++;
    continues = frame.batchContinues;
    offset += frame.size;
    if (damages.length === 0 && !continues) {
      batchEnd = offset;
      batchSince = offset - frame.size;
      batchRecords = records;
    }
  }
  progress.segmentDone(base, scanEnd, records);
  return { records, batchEnd, batchSince, batchRecords, damages, erasing, endsInsideBatch: continues };
}

/** The offset of the first valid frame at or after `from`, or `undefined`. */
async function resynchronise(
  window: SegmentWindow,
  base: number,
  from: number,
  scanEnd: number,
  progress: PassProgress,
  records: number,
): Promise<number | undefined> {
  let pauseAt = from + checkChunkBytes;
  for (let candidate = from; candidate < scanEnd; candidate++) {
    if (candidate >= pauseAt) {
      await progress.pause(base, candidate, records);
      pauseAt = candidate + checkChunkBytes;
    }
    if (window.frameStartsAt(positionOf(base, candidate), candidate)) return candidate;
  }
  return undefined;
}

/** Computes the longest valid prefix: it stops at the first gap, damaged header or frame, or incomplete batch. */
function validPrefix(segments: readonly SegmentScan[]): ValidPrefix {
  let lastSegment = -1;
  let end = segments[0]?.base ?? 0;
  let since = -1;
  let records = 0;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as SegmentScan;
    if (segment.fileBytes < 0 || segment.headerProblem !== undefined || (i > 0 && segment.base !== end)) break;
    lastSegment = i;
    end = segment.batchEnd;
    if (segment.batchSince >= 0) since = segment.batchSince;
    records += segment.batchRecords;
    const whole = segment.damages.length === 0 && !segment.endsInsideBatch && segment.batchEnd === segment.scanEnd;
    if (!whole) break;
  }
  return { lastSegment, end, since, records };
}

/**
 * Whether a record starts at `offset` in the scanned log: a valid frame for that offset is at its position (F-4,
 * F-12). `undefined` when the offset is outside every scanned segment, so nothing can be said.
 */
export function recordStartsAt(scan: LogScan, offset: number): boolean | undefined {
  let segment: SegmentScan | undefined;
  for (const candidate of scan.segments) if (candidate.base <= offset) segment = candidate;
  if (segment === undefined || segment.fileBytes < 0 || segment.headerProblem !== undefined) return undefined;
  return frameStartsIn(segment.path, segment.base, segment.scanEnd, offset);
}

/** Whether a valid frame for `offset` starts in the segment file `path` (base `base`, records up to `end`). */
export function frameStartsIn(path: string, base: number, end: number, offset: number): boolean {
  if (offset < base || offset >= end) return false;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw readFailure(path, error);
  }
  try {
    const window = new SegmentWindow(fd, path, positionOf(base, end), getReadBytes);
    return typeof window.frameAt(positionOf(base, offset), offset) !== 'string';
  } finally {
    closeSync(fd);
  }
}

function readFailure(path: string, error: unknown): SluiceError {
  return new SluiceError('READ_FAILED', `cannot read ${path}: ${(error as Error).message}`, { cause: error, file: path });
}

/**
 * Progress of a pass through the meter of the operation: `since` is the offset reached, `target` the end of the
 * last segment when the pass began, bytes count segment files (headers included).
 */
class PassProgress {
  bytesDone = 0;
  #bytesTotal = 0;
  #target = 0;
  /** Records of finished segments. */
  #records = 0;
  /** Bytes of the current segment already counted in `bytesDone`. */
  #within = 0;
  readonly #options: ScanOptions;

  constructor(options: ScanOptions) {
    this.#options = options;
    this.#checkAbort();
  }

  /** Takes the sizes of the segments: the denominator of the progress. */
  async measure(dir: string, bases: readonly number[]): Promise<void> {
    for (const base of bases) {
      try {
        const { size } = await stat(join(dir, segmentName(base)));
        this.#bytesTotal += size;
        this.#target = offsetAt(base, Math.max(size, headerBytes));
      } catch {
        // Gone already (dropped by retention): the pass notices it.
      }
    }
  }

  /** Between chunks: lets the event loop run (appends go on), checks the signal, reports. */
  async pause(base: number, offset: number, records: number): Promise<void> {
    this.#count(offset - base);
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.#checkAbort();
    const since = Math.min(offset, this.#target);
    this.#options.meter.update(since, this.#target, this.#records + records, this.bytesDone, this.#bytesTotal);
  }

  /** A segment's records are read (up to `scanEnd`). */
  segmentDone(base: number, scanEnd: number, records: number): void {
    this.#count(scanEnd - base);
    this.#within = 0;
    this.#records += records;
  }

  /** Bytes of a segment that are not records (its header, bytes past `scanEnd`, a file whose header is damaged). */
  advance(bytes: number): void {
    this.bytesDone += bytes;
  }

  finish(records: number): void {
    const target = Math.max(this.#target, 0);
    this.#options.meter.update(target, target, records, this.bytesDone, this.bytesDone, true);
  }

  #count(within: number): void {
    this.bytesDone += within - this.#within;
    this.#within = within;
  }

  #checkAbort(): void {
    const signal = this.#options.signal;
    if (signal?.aborted === true) {
      throw new SluiceError('ABORTED', `${this.#options.operation} was aborted`, { cause: signal.reason });
    }
  }
}

import { closeSync, constants, fdatasyncSync, fstatSync, ftruncateSync, renameSync } from 'node:fs';
import { readFully, writeFully } from '../../io/positioned.js';
import { crc32c } from '../../checksum/crc32c.js';
import { compactionSkipBytesMax } from '../../limits.js';
import { FrameReader } from './frame-reader.js';
import {
  chainBytes,
  eraseFrame,
  flagBatchContinues,
  flagDeleted,
  flagFiller,
  frameBytesMin,
  frameOverheadBytes,
  headerBytes,
  positionOf,
  readU64,
  type Frame,
} from './format.js';
import { encodeChainedFiller, fillerFits, hasTable, type CoveredRecord } from './security/filler.js';
import { openNoFollow } from './segment-files.js';
import type { Segments } from './segments.js';

/** What compaction may drop (F-64). Records without a key are only dropped when deleted. */
export interface CompactionPolicy {
  /**
   * Drop a record whose key has a later record only once it is older than this (milliseconds, by record time:
   * its time is before the clock's now minus this). Default: no age: every superseded record in a sealed segment
   * goes, whatever its time (even one appended in the compaction's millisecond, or given a time ahead of the clock).
   */
  readonly olderThanMs?: number;
  /**
   * Drop a tombstone (the last record of its key, with an empty value: the key was deleted) older than this.
   * Default: tombstones are kept, so readers of the key keep seeing its deletion.
   */
  readonly tombstonesOlderThanMs?: number;
}

/** Per record of a sealed segment: kept (`true`) or dropped. */
export interface SegmentPlan {
  readonly index: number;
  readonly dropped: number;
  readonly droppedBytes: number;
  /** Record offsets and sizes, in order, each with its fate. */
  readonly records: ReadonlyArray<{
    readonly offset: number;
    readonly size: number;
    readonly keep: boolean;
    readonly batchContinues: boolean;
    /** F-76: a chained record is dropped by rewriting it as a filler of its own that keeps its digest and link. */
    readonly chained: boolean;
  }>;
}

/** The plaintext key of an encrypted frame held in `buffer` (F-74): compaction compares keys, not ciphertexts. */
export type KeyDecrypter = (offset: number, buffer: Buffer, frame: Frame) => Uint8Array | undefined;

/**
 * Reads the keys of every record (no values decoded) to find each key's last record, then decides the fate of
 * each record of the sealed segments. Keys are held in memory, one entry per distinct key.
 */
export function planCompaction(
  segments: Segments,
  policy: CompactionPolicy,
  nowMs: number,
  decryptKey?: KeyDecrypter,
): { plans: SegmentPlan[]; keyed: number } {
  const reader = new FrameReader(segments);
  const keyOf = (offset: number, frame: Frame): string => {
    if (!frame.encrypted || decryptKey === undefined) {
      return reader.buffer.toString('latin1', frame.keyStart, frame.keyStart + frame.keyLength);
    }
    return Buffer.from(decryptKey(offset, reader.buffer, frame) ?? []).toString('latin1');
  };
  const last = new Map<string, number>();
  let keyed = 0;
  const first = segments.firstIndex;
  for (let index = first; index < segments.bases.length; index++) {
    const end = segments.endOf(index);
    for (let offset = segments.bases[index] as number; offset < end; ) {
      const frame = reader.at(index, offset, 'record', true);
      if (!frame.deleted && frame.keyLength > 0) {
        keyed++;
        last.set(keyOf(offset, frame), offset);
      }
      offset += frame.size;
    }
  }
  // Without an age, no time keeps a superseded record: `nowMs - 0` would keep those of the current millisecond
  // (and any given a later time), which "every superseded record goes" does not.
  const superseded = policy.olderThanMs === undefined ? Infinity : nowMs - policy.olderThanMs;
  const tombstones = policy.tombstonesOlderThanMs === undefined ? -Infinity : nowMs - policy.tombstonesOlderThanMs;
  const plans: SegmentPlan[] = [];
  // Keys with an older record kept: their tombstone must stay, or the older value would come back.
  const keptOlder = new Set<string>();
  for (let index = first; index < segments.bases.length - 1; index++) {
    const end = segments.endOf(index);
    const records: Array<SegmentPlan['records'][number]> = [];
    let dropped = 0;
    let droppedBytes = 0;
    for (let offset = segments.bases[index] as number; offset < end; ) {
      const frame = reader.at(index, offset, 'record', true);
      let keep = !frame.deleted;
      if (keep && frame.keyLength > 0) {
        const key = keyOf(offset, frame);
        const latest = last.get(key) === offset;
        if (!latest && frame.time < superseded) keep = false;
        else if (!latest) keptOlder.add(key);
        if (latest && frame.valueLength === 0 && frame.time < tombstones && !keptOlder.has(key)) keep = false;
      }
      records.push({ offset, size: frame.size, keep, batchContinues: frame.batchContinues, chained: frame.chainStart >= 0 });
      // Fillers of an earlier compaction are already dropped: they alone are no reason to rewrite.
      if (!keep && !frame.filler) {
        dropped++;
        droppedBytes += frame.size;
      }
      offset += frame.size;
    }
    plans.push({ index, dropped, droppedBytes, records });
  }
  return { plans, keyed };
}

/**
 * Rewrites one sealed segment as its plan says (F-64): a new file with the same header, every kept frame copied
 * at its own position, and each run of dropped frames replaced by skip frames (deleted frames, F-62, of at most
 * `compactionSkipBytesMax` bytes; a dropped last record of the segment gets one of its own, of its size) of
 * which only the first 32 and the last 4 bytes are written: the rest is never written, so the file system keeps
 * it as a hole and the space is freed. Positions, offsets and the file's length do not change, so `get` and scans
 * work as before. The new file is synced, renamed over the old one, and the caller syncs the directory. Returns
 * the file's allocated bytes before and after.
 */
export function rewriteSegment(segments: Segments, plan: SegmentPlan): { before: number; after: number } {
  const base = segments.bases[plan.index] as number;
  const path = segments.path(base);
  const temporary = `${path}.tmp`;
  const source = openNoFollow(path, constants.O_RDONLY);
  let target = -1;
  try {
    const size = fstatSync(source).size;
    const before = fstatSync(source).blocks * 512;
    target = openNoFollow(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, segments.fileMode);
    const header = Buffer.alloc(headerBytes);
    readAllOf(source, header, 0);
    writeFully(target, header, 0, header.length, 0);
    const records = plan.records;
    for (let i = 0; i < records.length; ) {
      const record = records[i] as SegmentPlan['records'][number];
      if (record.keep) {
        const frame = Buffer.allocUnsafe(record.size);
        readAllOf(source, frame, positionOf(base, record.offset));
        writeFully(target, frame, 0, frame.length, positionOf(base, record.offset));
        i++;
        continue;
      }
      let j = i;
      let runBytes = 0;
      while (j < records.length && !(records[j] as SegmentPlan['records'][number]).keep) {
        runBytes += (records[j] as SegmentPlan['records'][number]).size;
        j++;
      }
      const last = records[j - 1] as SegmentPlan['records'][number];
      // A run that ends the segment leaves its last record a frame of its own, at its own offset: when the next
      // segment holds no record yet, an open takes the log's last record from this segment's last frame (F-40
      // row 1), and a filler starting earlier would move `since` back.
      const split = j === records.length && j - i > 1;
      const head = split ? j - 1 : j;
      if (record.chained) {
        writeChainedRun(source, target, base, records.slice(i, head));
        if (split) writeChainedRun(source, target, base, [last]);
      } else if (split) {
        const before = records[j - 2] as SegmentPlan['records'][number];
        writeSkipFrames(target, base, record.offset, runBytes - last.size, before.batchContinues);
        writeSkipFrame(target, base, last.offset, last.size, last.batchContinues);
      } else {
        writeSkipFrames(target, base, record.offset, runBytes, last.batchContinues);
      }
      i = j;
    }
    ftruncateSync(target, size);
    fdatasyncSync(target);
    const after = fstatSync(target).blocks * 512;
    closeSync(target);
    target = -1;
    renameSync(temporary, path);
    return { before, after };
  } finally {
    closeSync(source);
    if (target >= 0) closeSync(target);
  }
}

/** Covers `bytes` from `offset` with skip frames, each of at least the smallest frame and at most the largest skip. */
function writeSkipFrames(fd: number, base: number, offset: number, bytes: number, batchContinues: boolean): void {
  let at = offset;
  let left = bytes;
  while (left > 0) {
    let size = Math.min(left, compactionSkipBytesMax);
    // Never leave a remainder smaller than a frame.
    if (left - size > 0 && left - size < frameBytesMin) size = left - frameBytesMin;
    // The batch flag of the last dropped record, kept at the run's end.
    writeSkipFrame(fd, base, at, size, left === size && batchContinues);
    at += size;
    left -= size;
  }
}

/**
 * One skip frame of `size` bytes at `at` (time 0, key length 0). Only its head and its trailing length are
 * written: what lies between stays a hole.
 */
function writeSkipFrame(fd: number, base: number, at: number, size: number, batchContinues: boolean): void {
  const frame = Buffer.alloc(size);
  frame.writeUInt32LE(size, 0);
  frame.writeUInt32LE(at >>> 0, 8);
  frame.writeUInt32LE(Math.floor(at / 0x1_0000_0000), 12);
  frame[26] = flagDeleted | flagFiller | (batchContinues ? flagBatchContinues : 0);
  frame.writeUInt32LE(size, size - 4);
  frame.writeUInt32LE(crc32c(frame, 8, size), 4);
  const position = positionOf(base, at);
  writeFully(fd, frame, 0, frameOverheadBytes - 4, position);
  writeFully(fd, frame, size - 4, 4, position + size - 4);
}

/**
 * F-76: a run of dropped records of a chained segment becomes fillers that keep, per record, what its link was
 * computed from (a table in the filler's head) and the last record's link (in its chain bytes); only those are
 * written, the rest stays a hole. A filler covers whole records and at most `compactionSkipBytesMax` bytes; records
 * too small to hold a table of their own stay in their deleted form (F-62) with the filler flag, and fillers of an
 * earlier compaction are kept as they are.
 */
function writeChainedRun(source: number, target: number, base: number, run: ReadonlyArray<SegmentPlan['records'][number]>): void {
  let group: CoveredRecord[] = [];
  let groupStart = -1;
  let groupBytes = 0;
  const flush = (): void => {
    if (group.length === 0) return;
    if (fillerFits(group.length, groupBytes)) {
      const { head, tail, size } = encodeChainedFiller(groupStart, group);
      const position = positionOf(base, groupStart);
      writeFully(target, head, 0, head.length, position);
      writeFully(target, tail, 0, tail.length, position + size - tail.length);
    } else {
      let offset = groupStart;
      for (const record of group) {
        writeDeletedForm(source, target, positionOf(base, offset), record.size);
        offset += record.size;
      }
    }
    group = [];
    groupBytes = 0;
  };
  for (const record of run) {
    const frame = Buffer.allocUnsafe(record.size);
    readAllOf(source, frame, positionOf(base, record.offset));
    // Not by its count alone: a record left in its deleted form may hold digest bytes there (see `hasTable`), and
    // would stay a frame of its own instead of being covered with the records beside it.
    if (((frame[26] as number) & flagFiller) !== 0 && hasTable(frame, 0, record.size)) {
      // A filler of an earlier compaction: kept whole (its table and link), between the groups around it.
      flush();
      writeFully(target, frame, 0, frame.length, positionOf(base, record.offset));
      continue;
    }
    if (group.length > 0 && groupBytes + record.size > compactionSkipBytesMax) flush();
    if (group.length === 0) groupStart = record.offset;
    const chainStart = record.size - 4 - chainBytes;
    group.push({
      size: record.size,
      time: readU64(frame, 16),
      keyLength: frame.readUInt16LE(24),
      batchContinues: ((frame[26] as number) & flagBatchContinues) !== 0,
      digest: frame.subarray(chainStart, chainStart + 32),
      link: frame.subarray(chainStart + 32, chainStart + 64),
    });
    groupBytes += record.size;
  }
  flush();
}

/** One dropped record as its deletion leaves it (F-62), flagged filler: head and chain bytes written only. */
function writeDeletedForm(source: number, target: number, position: number, size: number): void {
  const frame = Buffer.allocUnsafe(size);
  readAllOf(source, frame, position);
  eraseFrame(frame, 0, size);
  frame[26] = (frame[26] as number) | flagFiller;
  frame.writeUInt32LE(crc32c(frame, 8, size), 4);
  writeFully(target, frame, 0, 28, position);
  writeFully(target, frame, size - 4 - chainBytes, chainBytes + 4, position + size - 4 - chainBytes);
}

function readAllOf(fd: number, buffer: Buffer, position: number): void {
  if (readFully(fd, buffer, 0, buffer.length, position) < buffer.length) {
    throw new Error(`unexpected end of file at ${position + buffer.length}`);
  }
}

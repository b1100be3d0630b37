import { FrameReader } from './frame-reader.js';
import { headerBytes } from './format.js';
import type { Segments } from './segments.js';

/**
 * What to trim from the front of a log. Each given criterion names the oldest segments it would drop; the log
 * drops the longest such run (the union): whole sealed segments only, never the segment being written, so what a
 * trim keeps may exceed a limit by up to one segment (two when the one being written is still empty: the one
 * before it holds the log's last record). Offsets of the records kept never change.
 */
export interface RetentionPolicy {
  /**
   * Drop the segments whose records all lie before this offset: each record's offset is below it (the records a
   * stream with `lt: beforeOffset` yields), as for a Kafka `deleteRecords`. The offset need not be a record start.
   */
  readonly beforeOffset?: number;
  /**
   * Drop the segments whose last record is older than this many milliseconds (by record time: the append time
   * unless the application gave one, so this assumes times that grow with offsets).
   */
  readonly olderThanMs?: number;
  /** Keep at least this many of the newest records; drop the segments wholly older than them. */
  readonly maxRecords?: number;
  /** Keep the newest segments whose files add up to at most this many bytes (the active one always stays). */
  readonly maxBytes?: number;
}

/** Validates a policy: a programmer mistake (`TypeError` / `RangeError`) when a field is not a count or offset. */
export function checkRetention(policy: unknown): asserts policy is RetentionPolicy {
  if (typeof policy !== 'object' || policy === null) throw new TypeError('a retention policy must be an object');
  const known = ['beforeOffset', 'olderThanMs', 'maxRecords', 'maxBytes'];
  for (const [name, value] of Object.entries(policy)) {
    if (!known.includes(name)) throw new TypeError(`unknown retention option ${name} (${known.join(', ')})`);
    if (value === undefined) continue;
    if (typeof value !== 'number') throw new TypeError(`${name} must be a number`);
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
}

/**
 * The index of the first segment to keep under `policy` (the segments before it are dropped). Reads a segment's
 * last frame for an age, walks frames (no values decoded) of the newest segments for a record count, and only
 * looks at file sizes for bytes.
 */
export function firstSegmentToKeep(segments: Segments, policy: RetentionPolicy, nowMs: number): number {
  const first = segments.firstIndex;
  const active = segments.bases.length - 1;
  let keep = first;
  const reader = new FrameReader(segments);
  const { beforeOffset, olderThanMs, maxRecords, maxBytes } = policy;
  if (beforeOffset !== undefined) {
    // By the offset of the segment's last record, not its end: a bound inside that record (as `lt` takes it) still
    // has the record before it. The last frame of a sealed segment is at its last record's offset (F-64).
    // A bound at or below the segment's base keeps it without reading it (an empty segment has no last frame).
    const before = (index: number): boolean =>
      segments.endOf(index) <= beforeOffset ||
      (beforeOffset > (segments.bases[index] as number) && reader.endingAt(index, segments.endOf(index), 'record').offset < beforeOffset);
    while (keep < active && before(keep)) keep++;
  }
  if (olderThanMs !== undefined) {
    let index = first;
    while (index < active && lastTime(segments, reader, index) < nowMs - olderThanMs) index++;
    keep = Math.max(keep, index);
  }
  if (maxRecords !== undefined) {
    let records = 0;
    let index = active;
    // Walk back while the newer segments hold fewer than maxRecords: this one is still needed.
    while (index > first && records < maxRecords) {
      records += countRecords(segments, reader, index);
      if (records < maxRecords) index--;
    }
    if (records >= maxRecords) keep = Math.max(keep, index);
  }
  if (maxBytes !== undefined) {
    let bytes = segmentBytes(segments, active);
    let index = active;
    while (index > first && bytes + segmentBytes(segments, index - 1) <= maxBytes) bytes += segmentBytes(segments, --index);
    keep = Math.max(keep, index);
  }
  // An empty active segment (a crash right after it was made) tells nothing of the last record: the segment
  // before it stays, so that every open finds the log's `since` where the writer has it.
  const lastKept = segments.endOf(active) === segments.bases[active] ? Math.max(first, active - 1) : active;
  return Math.min(keep, lastKept);
}

/**
 * The time of a segment's last record. Compaction fillers (F-76) carry time 0: the walk goes back past them, and a
 * segment of fillers only (every record deleted and compacted away) holds nothing to keep.
 */
function lastTime(segments: Segments, reader: FrameReader, index: number): number {
  const base = segments.bases[index] as number;
  for (let end = segments.endOf(index); end > base; ) {
    const { offset, frame } = reader.endingAt(index, end, 'record');
    if (!frame.filler) return frame.time;
    end = offset;
  }
  return -Infinity;
}

function countRecords(segments: Segments, reader: FrameReader, index: number): number {
  const end = segments.endOf(index);
  let count = 0;
  for (let offset = segments.bases[index] as number; offset < end; ) {
    const frame = reader.at(index, offset, 'record', true);
    if (!frame.deleted) count++;
    offset += frame.size;
  }
  return count;
}

/** A segment's file size: its header and its records. */
function segmentBytes(segments: Segments, index: number): number {
  return segments.endOf(index) - (segments.bases[index] as number) + headerBytes;
}

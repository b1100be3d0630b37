/**
 * Differential property test of the native log's maintenance: random sequences of appends (single and batches,
 * with keys and explicit times), deletes, trims (by offset, age, record count and bytes), compactions (superseded
 * records, tombstones, deleted records), clock ticks, closes and reopens, and reads: `get` and `getRecord` of
 * record starts (live, deleted, dropped, trimmed), offsets inside records and fillers, past the end; streams with
 * random bounds, reversed and limited, also across a maintenance call made while they run; `firstOffset`,
 * `since`, `compactedAt`; and a read-only log opened beside the writer. Every observable result is compared with
 * an in-test model of the documented semantics (log.ts, file-log.ts, retention.ts, compaction.ts, README
 * "Deletes", "Compaction", "Retention", FORMAT.md F-60, F-62, F-64): which segments exist (4 KiB segments, rolled
 * over as F-13 says), which frames each holds (records, deleted records, fillers), and what each read returns.
 *
 * The log's clock is the test's, so ages are deterministic. Values are UTF-8 strings, so that an empty value (a
 * tombstone) can be appended. Half the runs use a chained log (F-72), whose compaction writes chained fillers (F-76),
 * half an encrypted one (F-74); each run picks the `os` or `buffered` durability.
 *
 * Reproducible: fixed seed. To explore further: SLUICE_MAINTENANCE_DIFFERENTIAL_SEED and
 * SLUICE_MAINTENANCE_DIFFERENTIAL_RUNS.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import fc from 'fast-check';
import { codecs } from '../../src/codec/codec.js';
import { FileLog, type CompactionPolicy, type Durability, type RetentionPolicy } from '../../src/log/file/file-log.js';
import type { AppendOptions, LogRecord, StreamOptions } from '../../src/log/log.js';
import { temporaryDirectory } from '../helpers.js';
import { outcomeOf, type Outcome } from '../outcome.js';

const seed = Number(process.env.SLUICE_MAINTENANCE_DIFFERENTIAL_SEED ?? 11);
const numRuns = Number(process.env.SLUICE_MAINTENANCE_DIFFERENTIAL_RUNS ?? 50);
const opsMax = 60;
const segmentBytesMax = 4096;
const headerBytes = 64;
const frameOverheadBytes = 32;
const chainBytes = 64;
const sealBytes = 28;
const encryption = { key: { id: 1, key: Buffer.alloc(32, 0x5a) } };
const startMs = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------------------------
// Operations. Offsets are not known when operations are generated: targets are a kind plus random numbers,
// resolved against the model when the operation runs.

type Key = string | Uint8Array | undefined;

interface Item {
  /** A number `n` stands for `'x'.repeat(n)` (a large value, kept short in reports). */
  readonly value: string | number;
  readonly key: Key;
  /** Milliseconds from the clock (`undefined`: the log's clock). */
  readonly age: number | undefined;
}

type Target =
  /** The start of a record ever appended: live, deleted, dropped by a compaction or trimmed. */
  | { readonly kind: 'record'; readonly pick: number }
  /** The start of a record of a segment not trimmed: live, deleted or dropped. */
  | { readonly kind: 'kept'; readonly pick: number }
  /** The start of a live record. */
  | { readonly kind: 'live'; readonly pick: number }
  /** Strictly inside a record ever appended. */
  | { readonly kind: 'inside'; readonly pick: number; readonly delta: number }
  /** Strictly inside a frame of a segment not trimmed (a record, or a filler over dropped ones). */
  | { readonly kind: 'insideKept'; readonly pick: number; readonly delta: number }
  | { readonly kind: 'past'; readonly delta: number }
  | { readonly kind: 'first'; readonly delta: number }
  | { readonly kind: 'any'; readonly pick: number };

type Bound = { readonly kind: 'record'; readonly pick: number; readonly delta: number } | { readonly kind: 'any'; readonly value: number };

interface StreamSpec {
  readonly lower: 'none' | 'gt' | 'gte';
  readonly lowerBound: Bound;
  readonly upper: 'none' | 'lt' | 'lte';
  readonly upperBound: Bound;
  readonly reverse: boolean;
  readonly limit: number | undefined;
}

interface TrimSpec {
  readonly beforeOffset: Bound | undefined;
  readonly olderThanMs: number | undefined;
  readonly maxRecords: number | undefined;
  readonly maxBytes: number | undefined;
  /** A policy with a negative count: a RangeError, thrown synchronously. */
  readonly invalid: boolean;
}

interface CompactSpec {
  readonly olderThanMs: number | undefined;
  readonly tombstonesOlderThanMs: number | undefined;
  readonly invalid: boolean;
}

type Maintenance =
  | { readonly op: 'delete'; readonly targets: readonly Target[]; readonly single: boolean }
  | { readonly op: 'trim'; readonly spec: TrimSpec }
  | { readonly op: 'compact'; readonly spec: CompactSpec };

type Op =
  | { readonly op: 'append'; readonly items: readonly Item[]; readonly batch: boolean; readonly keyMode: Mode; readonly timeMode: Mode }
  | Maintenance
  | { readonly op: 'deleteInvalid'; readonly value: unknown }
  | { readonly op: 'get' | 'getRecord' | 'compactedAt'; readonly target: Target }
  | { readonly op: 'stream'; readonly spec: StreamSpec }
  | { readonly op: 'streamAcross'; readonly spec: StreamSpec; readonly at: number; readonly action: Maintenance }
  | { readonly op: 'tick'; readonly ms: number }
  | { readonly op: 'reopen' }
  | { readonly op: 'readonly'; readonly targets: readonly Target[] };

/** How a batch passes keys (times): none, the first item's for all, or one per record. */
type Mode = 'none' | 'shared' | 'each';

const valueArb: fc.Arbitrary<string | number> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'é', '1'), maxLength: 40 }) },
  // A tombstone, when it has a key.
  { weight: 2, arbitrary: fc.constant('') },
  { weight: 3, arbitrary: fc.integer({ min: 40, max: 400 }) },
  // Large values: a few fill a segment, some do not fit one.
  { weight: 1, arbitrary: fc.integer({ min: 400, max: 5000 }) },
);

// Few distinct keys, so that records supersede each other; '' and an empty array are stored as no key.
const keyArb: fc.Arbitrary<Key> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 6, arbitrary: fc.constantFrom('a', 'b', 'c', 'd', 'é') },
  { weight: 1, arbitrary: fc.constantFrom(new Uint8Array([0xff, 0]), new Uint8Array([0x61]), new Uint8Array(0), '') },
);

const ageArb = fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.integer({ min: -3000, max: 9000 }) });

const itemArb: fc.Arbitrary<Item> = fc.record({ value: valueArb, key: keyArb, age: ageArb });
const modeArb = fc.constantFrom<Mode>('none', 'shared', 'each', 'each');

const targetArb: fc.Arbitrary<Target> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('record' as const), pick: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('kept' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('live' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('inside' as const), pick: fc.nat(), delta: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('insideKept' as const), pick: fc.nat(), delta: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('past' as const), delta: fc.nat({ max: 5000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('first' as const), delta: fc.integer({ min: -2, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('any' as const), pick: fc.nat() }) },
);

const boundArb: fc.Arbitrary<Bound> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('record' as const),
      pick: fc.nat(),
      delta: fc.oneof(fc.constant(0), fc.integer({ min: -2, max: 2 }), fc.integer({ min: -200, max: 200 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('any' as const), value: fc.integer({ min: -50, max: 40_000 }) }) },
);

const streamSpecArb: fc.Arbitrary<StreamSpec> = fc.record({
  lower: fc.constantFrom('none', 'none', 'gt', 'gte'),
  lowerBound: boundArb,
  upper: fc.constantFrom('none', 'none', 'lt', 'lte'),
  upperBound: boundArb,
  reverse: fc.boolean(),
  limit: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 10 }) }),
});

const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

const trimSpecArb: fc.Arbitrary<TrimSpec> = fc.record({
  beforeOffset: optional(boundArb),
  olderThanMs: optional(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 12_000 }))),
  maxRecords: optional(fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 10, max: 80 }))),
  maxBytes: optional(fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 5000, max: 30_000 }))),
  invalid: fc.constant(false),
});

const compactSpecArb: fc.Arbitrary<CompactSpec> = fc.record({
  olderThanMs: optional(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 8000 }))),
  tombstonesOlderThanMs: optional(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 8000 }))),
  invalid: fc.constant(false),
});

const maintenanceArb: fc.Arbitrary<Maintenance> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('delete' as const),
      targets: fc.oneof(
        { weight: 3, arbitrary: fc.array(fc.record({ kind: fc.constantFrom('kept' as const, 'live' as const), pick: fc.nat() }), { minLength: 1, maxLength: 5 }) },
        { weight: 1, arbitrary: fc.array(targetArb, { minLength: 1, maxLength: 4 }) },
      ),
      single: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('trim' as const), spec: trimSpecArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('compact' as const), spec: compactSpecArb }) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.record({ op: fc.constant('trim' as const), spec: trimSpecArb.map((spec) => ({ ...spec, invalid: true })) }),
      fc.record({ op: fc.constant('compact' as const), spec: compactSpecArb.map((spec) => ({ ...spec, invalid: true })) }),
    ),
  },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 14,
    arbitrary: fc.record({
      op: fc.constant('append' as const),
      items: fc.array(itemArb, { maxLength: 14, size: 'max' }),
      batch: fc.boolean(),
      keyMode: modeArb,
      timeMode: modeArb,
    }),
  },
  { weight: 8, arbitrary: maintenanceArb },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteInvalid' as const), value: fc.constantFrom<unknown>(-1, 1.5, '3', [0, -2], null) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constantFrom('get' as const, 'getRecord' as const, 'compactedAt' as const), target: targetArb }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('stream' as const), spec: streamSpecArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('streamAcross' as const),
      spec: streamSpecArb.map((spec) => ({ ...spec, limit: undefined })),
      at: fc.nat({ max: 20 }),
      action: maintenanceArb,
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 4000 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('reopen' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('readonly' as const), targets: fc.array(targetArb, { maxLength: 4 }) }) },
);

// ---------------------------------------------------------------------------------------------------------------
// Outcomes, comparable with deepEqual.

const failed = (code: string): Outcome => ({ error: `SluiceError ${code}`, thrown: 'asynchronously' });
const refused = (error: 'TypeError' | 'RangeError'): Outcome => ({ error, thrown: 'synchronously' });

interface PlainRecord {
  readonly offset: number;
  readonly value: string;
  readonly time: number;
  readonly key: string | undefined;
}

function plain(record: LogRecord<string>): PlainRecord {
  const { key } = record;
  return { offset: record.offset, value: record.value, time: record.time, key: key === undefined ? undefined : Buffer.from(key).toString('hex') };
}

async function collect(iterable: AsyncIterable<LogRecord<string>>): Promise<PlainRecord[]> {
  const records: PlainRecord[] = [];
  for await (const record of iterable) records.push(plain(record));
  return records;
}

// ---------------------------------------------------------------------------------------------------------------
// The model.

interface MRecord extends PlainRecord {
  readonly size: number;
  readonly valueBytes: number;
  state: 'live' | 'deleted' | 'dropped';
}

/**
 * A frame of a segment: a record (live or deleted in place, F-62) or a filler over dropped records (F-64). In a
 * chained log (F-76) a filler is one with a table of the records it covers, or a dropped record too small for a
 * table of its own in its deleted form.
 */
interface MFrame {
  readonly offset: number;
  readonly size: number;
  readonly record: MRecord | undefined;
  readonly filler?: 'table' | 'deleted form';
}

interface MSegment {
  readonly base: number;
  frames: MFrame[];
}

const keyHex = (key: Key): string | undefined => {
  if (key === undefined) return undefined;
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key);
  return bytes.length === 0 ? undefined : bytes.toString('hex');
};

class Model {
  /** A chained log (F-72): frames carry 64 more bytes, and compaction writes chained fillers (F-76). */
  readonly chained: boolean;
  /** An encrypted log (F-74): frames carry a 28-byte seal. */
  readonly encrypted: boolean;
  /** Every record ever appended, in offset order (targets pick from them). */
  readonly records: MRecord[] = [];
  /** The segments not trimmed, oldest first; the last is the one being written. */
  segments: MSegment[] = [{ base: 0, frames: [] }];
  now = startMs;

  constructor(chained: boolean, encrypted: boolean) {
    this.chained = chained;
    this.encrypted = encrypted;
  }

  get since(): number {
    return this.records[this.records.length - 1]?.offset ?? -1;
  }

  get end(): number {
    const last = this.records[this.records.length - 1];
    return last === undefined ? 0 : last.offset + last.size;
  }

  get first(): number {
    return (this.segments[0] as MSegment).base;
  }

  /** The offset just past segment `index` (the next one's base; the end of the log for the last). */
  endOf(index: number): number {
    return index + 1 < this.segments.length ? (this.segments[index + 1] as MSegment).base : this.end;
  }

  append(entries: ReadonlyArray<{ value: string; key: string | undefined; time: number }>): number[] {
    if (entries.length === 0) return [];
    const start = this.end;
    const overhead = frameOverheadBytes + (this.chained ? chainBytes : 0) + (this.encrypted ? sealBytes : 0);
    const sizes = entries.map((entry) => overhead + (entry.key === undefined ? 0 : entry.key.length / 2) + Buffer.byteLength(entry.value));
    const bytes = sizes.reduce((sum, size) => sum + size, 0);
    let active = this.segments[this.segments.length - 1] as MSegment;
    // F-13: a batch that would take the segment past its size starts a new one (unless the segment is empty).
    if (start > active.base && start - active.base + bytes > segmentBytesMax) {
      active = { base: start, frames: [] };
      this.segments.push(active);
    }
    let offset = start;
    return entries.map((entry, i) => {
      const size = sizes[i] as number;
      const record: MRecord = { offset, value: entry.value, time: entry.time, key: entry.key, size, valueBytes: Buffer.byteLength(entry.value), state: 'live' };
      this.records.push(record);
      active.frames.push({ offset, size, record });
      offset += size;
      return record.offset;
    });
  }

  live(): MRecord[] {
    const records: MRecord[] = [];
    for (const segment of this.segments) for (const frame of segment.frames) if (frame.record?.state === 'live') records.push(frame.record);
    return records;
  }

  /** The frame that starts at `offset`, `undefined` when none does (and `null` outside the log). */
  frameAt(offset: number): MFrame | undefined | null {
    if (offset > this.since || offset < this.first) return null;
    const segment = this.segmentOf(offset);
    return segment?.frames.find((frame) => frame.offset === offset);
  }

  segmentOf(offset: number): MSegment | undefined {
    let found: MSegment | undefined;
    for (const segment of this.segments) if (segment.base <= offset) found = segment;
    return found;
  }

  get(offset: number): Outcome {
    const frame = this.frameAt(offset);
    if (frame === null) return failed('OFFSET_OUT_OF_RANGE');
    if (frame === undefined) return failed('NOT_A_RECORD');
    if (frame.record === undefined || frame.record.state !== 'live') return failed('RECORD_DELETED');
    const { value, time, key } = frame.record;
    return { ok: { offset, value, time, key } };
  }

  compactedAt(offset: number): boolean {
    if (offset < this.first || offset >= this.end) return false;
    const frame = this.segmentOf(offset)?.frames.find((each) => each.offset <= offset && offset < each.offset + each.size);
    return frame !== undefined && frame.offset !== offset && frame.record === undefined;
  }

  delete(offsets: readonly number[]): Outcome {
    const pending: MRecord[] = [];
    for (const offset of new Set(offsets)) {
      const frame = this.frameAt(offset);
      if (frame === null) return failed('OFFSET_OUT_OF_RANGE');
      if (frame === undefined) return failed('NOT_A_RECORD');
      if (frame.record?.state === 'live') pending.push(frame.record);
    }
    for (const record of pending) record.state = 'deleted';
    return { ok: undefined };
  }

  trim(policy: RetentionPolicy): Outcome {
    const active = this.segments.length - 1;
    const size = (index: number): number => this.endOf(index) - (this.segments[index] as MSegment).base + headerBytes;
    let keep = 0;
    // Each criterion names the oldest segments it would drop; the longest run goes (RetentionPolicy).
    if (policy.beforeOffset !== undefined) {
      // "Drop the segments whose records all lie before this offset": a record's place is its offset, as for a
      // stream's `lt`. The last frame of a sealed segment is at its last record's offset (F-64).
      const lastOffset = (segment: MSegment): number => (segment.frames[segment.frames.length - 1] as MFrame).offset;
      while (keep < active && lastOffset(this.segments[keep] as MSegment) < policy.beforeOffset) keep++;
    }
    if (policy.olderThanMs !== undefined) {
      let index = 0;
      // "Drop the segments whose last record is older than this": fillers are no records; a segment of fillers
      // only holds nothing to keep.
      const lastTime = (segment: MSegment): number => {
        const records = segment.frames.filter((frame) => frame.record !== undefined && frame.record.state !== 'dropped');
        return records.length === 0 ? -Infinity : (records[records.length - 1]?.record as MRecord).time;
      };
      while (index < active && lastTime(this.segments[index] as MSegment) < this.now - policy.olderThanMs) index++;
      keep = Math.max(keep, index);
    }
    if (policy.maxRecords !== undefined) {
      // Keep at least this many of the newest records: the newest segment from which on they are that many.
      let records = 0;
      for (let index = active; index >= 0; index--) {
        records += (this.segments[index] as MSegment).frames.filter((frame) => frame.record?.state === 'live').length;
        if (records >= policy.maxRecords) {
          keep = Math.max(keep, index);
          break;
        }
      }
    }
    if (policy.maxBytes !== undefined) {
      let bytes = size(active);
      let index = active;
      while (index > 0 && bytes + size(index - 1) <= policy.maxBytes) bytes += size(--index);
      keep = Math.max(keep, index);
    }
    keep = Math.min(keep, active);
    let bytesDropped = 0;
    for (let index = 0; index < keep; index++) bytesDropped += size(index);
    this.segments = this.segments.slice(keep);
    if (keep > 0) count('trim: segments dropped');
    return { ok: { segmentsDropped: keep, bytesDropped, firstOffset: this.first } };
  }

  compact(policy: CompactionPolicy): Outcome {
    const last = new Map<string, MRecord>();
    for (const record of this.live()) if (record.key !== undefined) last.set(record.key, record);
    if (last.size === 0) return failed('INVALID_INPUT');
    // "Default: every superseded record in a sealed segment goes", whatever its time.
    const superseded = policy.olderThanMs === undefined ? Infinity : this.now - policy.olderThanMs;
    const tombstones = policy.tombstonesOlderThanMs === undefined ? -Infinity : this.now - policy.tombstonesOlderThanMs;
    const keptOlder = new Set<string>();
    const result = { segmentsRewritten: 0, recordsDropped: 0, bytesDropped: 0 };
    for (const segment of this.segments.slice(0, -1)) {
      const fates = segment.frames.map((frame) => {
        const record = frame.record;
        if (record === undefined || record.state !== 'live') return false;
        if (record.key === undefined) return true;
        const latest = last.get(record.key) === record;
        if (!latest) {
          if (record.time < superseded) return false;
          keptOlder.add(record.key);
          return true;
        }
        // A tombstone goes only when no older record of its key stays (that value would come back).
        return !(record.valueBytes === 0 && record.time < tombstones && !keptOlder.has(record.key));
      });
      const dropped = segment.frames.filter((frame, i) => !fates[i] && frame.record !== undefined);
      if (dropped.length === 0) continue;
      count('compact: a segment rewritten');
      result.segmentsRewritten++;
      result.recordsDropped += dropped.length;
      result.bytesDropped += dropped.reduce((sum, frame) => sum + frame.size, 0);
      for (const frame of dropped) (frame.record as MRecord).state = 'dropped';
      // Each run of dropped frames becomes a filler; a run that ends the segment leaves its last frame a filler
      // of its own (F-64).
      const frames: MFrame[] = [];
      for (let i = 0; i < segment.frames.length; ) {
        const frame = segment.frames[i] as MFrame;
        if (fates[i]) {
          frames.push(frame);
          i++;
          continue;
        }
        let j = i;
        while (j < segment.frames.length && !fates[j]) j++;
        const run = segment.frames.slice(i, j);
        const lastFrame = run[run.length - 1] as MFrame;
        const split = j === segment.frames.length && run.length > 1;
        const head = split ? run.slice(0, -1) : run;
        if (this.chained) {
          frames.push(...chainedFillers(head));
          if (split) frames.push(...chainedFillers([lastFrame]));
        } else {
          frames.push({ offset: frame.offset, size: head.reduce((sum, each) => sum + each.size, 0), record: undefined, filler: 'table' });
          if (split) frames.push({ offset: lastFrame.offset, size: lastFrame.size, record: undefined, filler: 'table' });
        }
        i = j;
      }
      segment.frames = frames;
    }
    return { ok: result };
  }

  /** The offset a target points at. */
  offset(target: Target): number {
    const records = this.records;
    const count = records.length;
    switch (target.kind) {
      case 'record':
        return count === 0 ? 0 : (records[target.pick % count] as MRecord).offset;
      case 'kept':
      case 'live': {
        const starts = this.segments.flatMap((segment) =>
          segment.frames.flatMap((frame) => (target.kind === 'kept' ? (frame.record === undefined ? records.filter((r) => r.offset >= frame.offset && r.offset < frame.offset + frame.size) : [frame.record]) : frame.record?.state === 'live' ? [frame.record] : [])),
        );
        return starts.length === 0 ? this.offset({ kind: 'record', pick: target.pick }) : (starts[target.pick % starts.length] as MRecord).offset;
      }
      case 'inside': {
        if (count === 0) return 1 + (target.delta % 50);
        const record = records[target.pick % count] as MRecord;
        return record.offset + 1 + (target.delta % (record.size - 1));
      }
      case 'insideKept': {
        const frames = this.segments.flatMap((segment) => segment.frames);
        if (frames.length === 0) return this.offset({ kind: 'inside', pick: target.pick, delta: target.delta });
        const frame = frames[target.pick % frames.length] as MFrame;
        return frame.offset + 1 + (target.delta % (frame.size - 1));
      }
      case 'past':
        return this.since + 1 + target.delta;
      case 'first':
        return Math.max(0, this.first + target.delta);
      case 'any':
        return target.pick % (this.end + 100);
    }
  }

  bound(bound: Bound): number {
    if (bound.kind === 'any') return bound.value;
    const count = this.records.length;
    return (count === 0 ? 0 : (this.records[bound.pick % count] as MRecord).offset) + bound.delta;
  }

  streamOptions(spec: StreamSpec): StreamOptions {
    return {
      ...(spec.lower === 'gt' && { gt: this.bound(spec.lowerBound) }),
      ...(spec.lower === 'gte' && { gte: this.bound(spec.lowerBound) }),
      ...(spec.upper === 'lt' && { lt: this.bound(spec.upperBound) }),
      ...(spec.upper === 'lte' && { lte: this.bound(spec.upperBound) }),
      reverse: spec.reverse,
      ...(spec.limit !== undefined && { limit: spec.limit }),
    };
  }

  /** The live records a stream with these options yields. */
  stream(options: StreamOptions): PlainRecord[] {
    const low = Math.max(0, options.gt !== undefined ? options.gt + 1 : (options.gte ?? 0));
    const high = options.lt !== undefined ? options.lt : options.lte !== undefined ? options.lte + 1 : Infinity;
    let records: PlainRecord[] = this.live()
      .filter((record) => record.offset >= low && record.offset < high)
      .map(({ offset, value, time, key }) => ({ offset, value, time, key }));
    if (options.reverse === true) records = records.reverse();
    return options.limit === undefined ? records : records.slice(0, options.limit);
  }

  trimPolicy(spec: TrimSpec): RetentionPolicy {
    const policy = {
      ...(spec.beforeOffset !== undefined && { beforeOffset: Math.max(0, this.bound(spec.beforeOffset)) }),
      ...(spec.olderThanMs !== undefined && { olderThanMs: spec.olderThanMs }),
      ...(spec.maxRecords !== undefined && { maxRecords: spec.maxRecords }),
      ...(spec.maxBytes !== undefined && { maxBytes: spec.maxBytes }),
    };
    return spec.invalid ? { ...policy, maxRecords: -1 } : policy;
  }

  compactPolicy(spec: CompactSpec): CompactionPolicy {
    const policy = {
      ...(spec.olderThanMs !== undefined && { olderThanMs: spec.olderThanMs }),
      ...(spec.tombstonesOlderThanMs !== undefined && { tombstonesOlderThanMs: spec.tombstonesOlderThanMs }),
    };
    return spec.invalid ? { ...policy, olderThanMs: 1.5 } : policy;
  }
}

/**
 * F-76: the frames a chained compaction writes over a run of dropped frames: a filler of an earlier compaction with
 * a table stays as it is; the frames between such fillers are covered by one filler with a table of them when it
 * fits (a 32-byte head, 48 bytes per record, the chain bytes and the trailing size), else each stays a frame of its
 * own in its deleted form.
 */
function chainedFillers(run: readonly MFrame[]): MFrame[] {
  const frames: MFrame[] = [];
  let group: MFrame[] = [];
  const flush = (): void => {
    if (group.length === 0) return;
    const bytes = group.reduce((sum, frame) => sum + frame.size, 0);
    if (32 + group.length * 48 + chainBytes + 4 <= bytes) frames.push({ offset: (group[0] as MFrame).offset, size: bytes, record: undefined, filler: 'table' });
    else for (const frame of group) frames.push({ offset: frame.offset, size: frame.size, record: undefined, filler: 'deleted form' });
    group = [];
  };
  for (const frame of run) {
    if (frame.filler === 'table') {
      flush();
      frames.push(frame);
    } else {
      group.push(frame);
    }
  }
  flush();
  return frames;
}

// ---------------------------------------------------------------------------------------------------------------
// Running operations on the log and the model.

const coverage = new Map<string, number>();
function count(what: string, by = 1): void {
  coverage.set(what, (coverage.get(what) ?? 0) + by);
}

interface Run {
  log: FileLog<string>;
  readonly dir: string;
  readonly durability: Durability;
  readonly model: Model;
}

function open(run: { dir: string; durability: Durability; model: Model }, readonly = false): Promise<FileLog<string>> {
  const clock = run.model;
  return FileLog.open<string>(run.dir, {
    codec: codecs.utf8(),
    ...(run.model.chained && !readonly && { chain: 'sha256' as const }),
    ...(run.model.encrypted && { encryption }),
    segmentBytesMax,
    now: () => clock.now,
    ...(readonly ? { readonly: true } : { durability: run.durability }),
  });
}

/** The append call of an `append` operation, and the entries the model expects it to write. */
function appendCall(op: Extract<Op, { op: 'append' }>, now: number): {
  values: string | string[];
  options: AppendOptions;
  entries: Array<{ value: string; key: string | undefined; time: number }>;
} {
  const items = op.batch ? op.items : op.items.slice(0, 1);
  if (items.length === 0 && !op.batch) return { values: 'v', options: {}, entries: [{ value: 'v', key: undefined, time: now }] };
  const timeOf = (item: Item | undefined): number | undefined => (item?.age === undefined ? undefined : Math.max(0, now - item.age));
  const first = items[0];
  const options: { key?: AppendOptions['key']; time?: AppendOptions['time'] } = {};
  const keyMode = op.batch ? op.keyMode : 'shared';
  const timeMode = op.batch ? op.timeMode : 'shared';
  if (keyMode === 'shared' && first?.key !== undefined) options.key = first.key;
  if (keyMode === 'each') options.key = items.map((item) => item.key);
  if (timeMode === 'shared' && timeOf(first) !== undefined) options.time = timeOf(first);
  if (timeMode === 'each') options.time = items.map((item) => timeOf(item) ?? now);
  const valueOf = (item: Item): string => (typeof item.value === 'number' ? 'x'.repeat(item.value) : item.value);
  const entries = items.map((item, i) => ({
    value: valueOf(item),
    key: keyMode === 'none' ? undefined : keyHex(keyMode === 'shared' ? first?.key : item.key),
    time: timeMode === 'none' ? now : timeMode === 'shared' ? (timeOf(first) ?? now) : ((options.time as number[])[i] as number),
  }));
  return { values: op.batch ? items.map(valueOf) : valueOf(first as Item), options, entries };
}

/** Runs a maintenance call on the log and the model; asserts that they agree. */
async function maintain(run: Run, action: Maintenance, label: string): Promise<Outcome> {
  const { log, model } = run;
  let actual: Outcome;
  let expected: Outcome;
  switch (action.op) {
    case 'delete': {
      const offsets = action.targets.map((target) => model.offset(target));
      const argument = action.single ? (offsets[0] as number) : offsets;
      actual = await outcomeOf(() => log.delete(argument));
      expected = model.delete(offsets.slice(0, action.single ? 1 : undefined));
      break;
    }
    case 'trim': {
      const policy = model.trimPolicy(action.spec);
      actual = await outcomeOf(() => log.trim(policy));
      expected = action.spec.invalid ? refused('RangeError') : model.trim(policy);
      break;
    }
    case 'compact': {
      const policy = model.compactPolicy(action.spec);
      actual = await outcomeOf(
        () => log.compact(policy),
        (result) => {
          assert.ok(result.diskBytesFreed >= 0, `${label}: diskBytesFreed`);
          return { segmentsRewritten: result.segmentsRewritten, recordsDropped: result.recordsDropped, bytesDropped: result.bytesDropped };
        },
      );
      expected = action.spec.invalid ? refused('RangeError') : model.compact(policy);
      break;
    }
  }
  assert.deepEqual(actual, expected, `${label}: ${action.op} ${JSON.stringify(action)}`);
  count(`${action.op} ${'ok' in expected ? 'ok' : expected.error}`);
  return expected;
}

/**
 * A stream that a maintenance call interrupts: the records it yields before the call are the model's; after it
 * (README: "a stream that already read a record may still yield it", "a stream part-way through a segment that
 * compaction swaps goes on with the records it kept", "a stream that was reading a dropped segment ends with
 * OFFSET_OUT_OF_RANGE rather than skip ahead") it yields, in order, records live before the call, among them
 * every record live after it up to where it ended.
 */
async function streamAcross(run: Run, op: Extract<Op, { op: 'streamAcross' }>, label: string): Promise<void> {
  const { model } = run;
  const options = model.streamOptions(op.spec);
  const before = model.stream(options);
  const yielded: PlainRecord[] = [];
  let acted = false;
  const act = async (): Promise<void> => {
    acted = true;
    await maintain(run, op.action, `${label} (during a stream)`);
  };
  const outcome = await outcomeOf(async () => {
    for await (const record of run.log.stream(options)) {
      yielded.push(plain(record));
      if (yielded.length === op.at) await act();
    }
  });
  const prefix = Math.min(op.at, before.length);
  assert.deepEqual(yielded.slice(0, prefix), before.slice(0, prefix), `${label}: the records before the call`);
  if (!acted) {
    await act();
    assert.deepEqual(outcome, { ok: undefined }, `${label}: the stream`);
    assert.deepEqual(yielded, before, `${label}: the stream`);
    return;
  }
  const rest = yielded.slice(prefix);
  const candidates = new Map(before.slice(prefix).map((record) => [record.offset, record]));
  const direction = op.spec.reverse ? -1 : 1;
  let previous = prefix > 0 ? (before[prefix - 1] as PlainRecord).offset : undefined;
  for (const record of rest) {
    assert.deepEqual(record, candidates.get(record.offset), `${label}: a record the stream had in range before the call`);
    if (previous !== undefined) assert.ok((record.offset - previous) * direction > 0, `${label}: in order`);
    previous = record.offset;
  }
  if ('error' in outcome) {
    assert.deepEqual(outcome, failed('OFFSET_OUT_OF_RANGE'), `${label}: only a trim ends a stream`);
    assert.equal(op.action.op, 'trim', `${label}: only a trim ends a stream`);
    count('streamAcross ended by a trim');
  }
  const after = model.stream(options).filter((record) => candidates.has(record.offset));
  const reached = rest.length === 0 ? undefined : (rest[rest.length - 1] as PlainRecord).offset;
  const required = after.filter((record) => !('error' in outcome) || (reached !== undefined && (record.offset - reached) * direction <= 0));
  const seen = new Set(rest.map((record) => record.offset));
  for (const record of required) assert.ok(seen.has(record.offset), `${label}: the stream skipped ${record.offset}, live after the call`);
  count('streamAcross');
}

/** Everything a log shows, compared with the model: since, firstOffset, both streams, the given targets. */
async function compareAll(log: FileLog<string>, model: Model, targets: readonly Target[], label: string): Promise<void> {
  assert.equal(log.since, model.since, `${label}: since`);
  assert.equal(log.firstOffset, model.first, `${label}: firstOffset`);
  const all = model.stream({});
  assert.deepEqual(await collect(log.stream()), all, `${label}: forward stream`);
  assert.deepEqual(await collect(log.stream({ reverse: true })), [...all].reverse(), `${label}: reverse stream`);
  for (const target of targets) {
    const offset = model.offset(target);
    assert.deepEqual(await outcomeOf(() => log.getRecord(offset), plain), model.get(offset), `${label}: getRecord(${offset})`);
  }
}

async function step(run: Run, op: Op, label: string): Promise<void> {
  const { model } = run;
  switch (op.op) {
    case 'append': {
      const { values, options, entries } = appendCall(op, model.now);
      const actual = await outcomeOf((): Promise<number | number[]> =>
        typeof values === 'string' ? run.log.append(values, options) : run.log.append(values, options),
      );
      const offsets = model.append(entries);
      assert.deepEqual(actual, { ok: typeof values === 'string' ? offsets[0] : offsets }, `${label}: offsets`);
      count(entries.length === 0 ? 'append empty' : 'append');
      break;
    }
    case 'delete':
    case 'trim':
    case 'compact':
      await maintain(run, op, label);
      break;
    case 'deleteInvalid': {
      const actual = await outcomeOf(() => run.log.delete(op.value as number));
      const expected = typeof op.value === 'number' || Array.isArray(op.value) ? refused('RangeError') : refused('TypeError');
      assert.deepEqual(actual, expected, `${label}: delete(${String(op.value)})`);
      break;
    }
    case 'get': {
      const offset = model.offset(op.target);
      const expected = model.get(offset);
      const actual = await outcomeOf(() => run.log.get(offset));
      assert.deepEqual(actual, 'ok' in expected ? { ok: (expected.ok as PlainRecord).value } : expected, `${label}: get(${offset})`);
      count(`get ${'ok' in expected ? 'ok' : expected.error}`);
      break;
    }
    case 'getRecord': {
      const offset = model.offset(op.target);
      const expected = model.get(offset);
      assert.deepEqual(await outcomeOf(() => run.log.getRecord(offset), plain), expected, `${label}: getRecord(${offset})`);
      count(`getRecord ${'ok' in expected ? 'ok' : expected.error}`);
      break;
    }
    case 'compactedAt': {
      const offset = model.offset(op.target);
      const expected = model.compactedAt(offset);
      assert.equal(run.log.compactedAt(offset), expected, `${label}: compactedAt(${offset})`);
      count(`compactedAt ${expected}`);
      break;
    }
    case 'stream': {
      const options = model.streamOptions(op.spec);
      const expected = model.stream(options);
      assert.deepEqual(await collect(run.log.stream(options)), expected, `${label}: stream(${JSON.stringify(options)})`);
      count(`stream ${expected.length === 0 ? 'empty' : 'records'}`);
      break;
    }
    case 'streamAcross':
      await streamAcross(run, op, label);
      break;
    case 'tick':
      model.now += op.ms;
      break;
    case 'reopen':
      await run.log.close();
      run.log = await open(run);
      count('reopen');
      break;
    case 'readonly': {
      // Whatever the writer acknowledged is in the files for a reader of them.
      await run.log.sync();
      const reader = await open(run, true);
      try {
        await compareAll(reader, model, op.targets, `${label} (read-only)`);
      } finally {
        await reader.close();
      }
      count('readonly');
      break;
    }
  }
  assert.equal(run.log.since, model.since, `${label}: since`);
  assert.equal(run.log.firstOffset, model.first, `${label}: firstOffset`);
}

it(`FileLog maintenance against a model (seed ${seed}, ${numRuns} runs of up to ${opsMax} operations)`, async (t) => {
  const root = temporaryDirectory('sluice-maintenance-differential-');
  const details = await fc.check(
    fc.asyncProperty(fc.constantFrom<Durability>('os', 'os', 'buffered'), fc.boolean(), fc.boolean(), fc.array(opArb, { maxLength: opsMax, size: 'max' }), async (durability, chained, encrypted, ops) => {
      const dir = mkdtempSync(join(root, 'run-'));
      const model = new Model(chained, encrypted);
      const run: Run = { dir, durability, model, log: await open({ dir, durability, model }) };
      try {
        for (const [index, op] of ops.entries()) await step(run, op, `op ${index} (${op.op})`);
        await step(run, { op: 'reopen' }, 'final reopen');
        const every = model.records.map((record): Target => ({ kind: 'record', pick: model.records.indexOf(record) }));
        await compareAll(run.log, model, every, 'final');
        count('segments', model.segments.length);
        count('records', model.records.length);
        if (chained) count('chained logs');
        if (encrypted) count('encrypted logs');
      } finally {
        await run.log.close();
      }
    }),
    { seed, numRuns, includeErrorInReport: true, interruptAfterTimeLimit: Math.max(60_000, numRuns * 500) },
  );
  if (details.failed) throw new Error(fc.defaultReportMessage(details), { cause: details.errorInstance });
  if (details.interrupted) t.diagnostic(`interrupted by the time limit after ${details.numRuns} of ${numRuns} runs`);
  const lines = [...coverage].sort(([a], [b]) => a.localeCompare(b)).map(([what, n]) => `${what}: ${n}`);
  t.diagnostic(`covered: ${lines.join(', ')}`);
});

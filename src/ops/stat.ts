import { stat as statFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { skipValues } from '../codec/codec.js';
import { checkSignal, throwIfAborted } from '../errors.js';
import { FileLog } from '../log/file/file-log.js';
import { decodeHeader, headerBytes } from '../log/file/format.js';
import { FrameReader } from '../log/file/frame-reader.js';
import type { Segments } from '../log/file/segments.js';
import { FlumeOffsetLog } from '../log/flume-offset/flume-offset-log.js';
import { readViewStates, type ViewStorage } from './view-states.js';
import { checkFlumeOffsetFileOptions, checkOptionNames } from '../log/open-checks.js';

/** One segment file of a log. */
export interface SegmentStat {
  /** The file name inside the log directory. */
  readonly file: string;
  /** The offset of the segment's first record. */
  readonly base: number;
  /** The size of the file on disk, header included. */
  readonly bytes: number;
  readonly records: number;
  /** Deleted records (F-62) still taking their place, and records compaction dropped (F-64), with their bytes. */
  readonly deletedRecords: number;
  readonly deletedBytes: number;
  /** An encrypted log's segment: the id of the key its records are encrypted with (F-75; never the key). */
  readonly keyId?: number;
}

/** One view's stored state under `<dir>/views/<name>/`, read without the view's code (FORMAT.md F-50, F-52). */
export interface ViewStat {
  readonly name: string;
  /** `state-file` (reduce views), `lmdb` (index, key, time, query views), `unknown` (nothing Sluice knows). */
  readonly storage: ViewStorage;
  /** The view version stored with the state; `null` when unknown (nothing stored yet, unreadable, unknown storage). */
  readonly version: number | null;
  /** The last offset the stored state includes (`-1`: none); `null` when unknown. */
  readonly since: number | null;
  /** The size of the view's files on disk. */
  readonly bytes: number;
  /** Why the state cannot be read (the view rebuilds when next used), or `null`. */
  readonly problem: string | null;
}

/** The key id a segment's header names (F-75), or `undefined` when the header cannot be read. */
function keyIdOf(segments: Segments, index: number): number | undefined {
  const header = Buffer.alloc(headerBytes);
  const decoded = decodeHeader(header.subarray(0, segments.read(index, 0, header, 0, headerBytes)));
  return typeof decoded === 'string' ? undefined : decoded.security.keyId;
}

/** The shape of a log at one moment. Offsets are `-1` when the log holds no record (as `Log.since` is). */
export interface LogStat {
  readonly segments: SegmentStat[];
  readonly records: number;
  /** The size of all segment files on disk. */
  readonly bytes: number;
  readonly firstOffset: number;
  readonly lastOffset: number;
  /** Deleted records and their frames' bytes (with compaction's fillers, whose records are gone: bytes only). */
  readonly deletedRecords: number;
  readonly deletedBytes: number;
  /** The views with state in the log's directory, by name (`[]` for a flumelog-offset file). */
  readonly views: ViewStat[];
  /** A tamper-evident native log's hash (F-72), else absent or `null`. */
  readonly chain?: string | null;
  /** True for an encrypted native log (F-74); no key is needed to stat it, and none is shown. */
  readonly encrypted?: boolean;
}

export interface StatOptions {
  /** Aborting ends the scan with a `SluiceError` of code `ABORTED`. */
  readonly signal?: AbortSignal;
}

/**
 * Opens the log in `dir` read-only and streams it once to count its records per segment, then reads the state
 * of each view under `<dir>/views/` (its version, `since` and size; an LMDB environment is opened read-only,
 * which may create LMDB's `-lock` file beside it). The counts are those of the records that existed when the
 * log was opened; a writer may keep appending meanwhile. Fails with `LOG_NOT_FOUND`, `NOT_A_LOG`, `CORRUPT_*`
 * as `FileLog.open` and `stream` do, and `ABORTED`.
 */
export async function stat(dir: string, options: StatOptions = {}): Promise<LogStat> {
  checkStatOptions(options);
  const signal = options.signal;
  throwIfAborted(signal, 'stat');
  const log = await FileLog.open(dir, { readonly: true, codec: skipValues, withoutKey: true });
  try {
    // Snapshot first: a writer may add records and segments while we scan, and the numbers must agree.
    const segmentsOfLog = log.segments;
    const bases = [...segmentsOfLog.bases];
    const lastOffset = log.since;
    const end = segmentsOfLog.end;
    // Frames, not a stream: a stream skips deleted records, and stat counts them. A record whose deletion is in
    // progress (F-63) reads as deleted here too: the next writable open finishes it.
    const reader = new FrameReader(segmentsOfLog);
    const counts = bases.map(() => ({ records: 0, deletedRecords: 0, deletedBytes: 0 }));
    let firstOffset = -1;
    let frames = 0;
    for (let index = 0; index < bases.length; index++) {
      const count = counts[index] as (typeof counts)[number];
      const segmentEnd = Math.min(segmentsOfLog.endOf(index), end);
      for (let offset = bases[index] as number; offset < segmentEnd; ) {
        if (++frames % 4096 === 0) await checkAbort(signal);
        const frame = reader.at(index, offset, 'record', true);
        if (!frame.deleted) {
          count.records++;
          if (firstOffset < 0) firstOffset = offset;
        } else {
          if (!frame.filler) count.deletedRecords++;
          count.deletedBytes += frame.size;
        }
        offset += frame.size;
      }
    }
    const segments = await Promise.all(
      bases.map(async (base, i) => {
        const path = segmentsOfLog.path(base);
        const { size } = await statFile(path);
        const keyId = log.encrypted ? keyIdOf(segmentsOfLog, i) : undefined;
        return { file: basename(path), base, bytes: size, ...(counts[i] as (typeof counts)[number]), ...(keyId === undefined ? {} : { keyId }) };
      }),
    );
    const total = (field: 'bytes' | 'records' | 'deletedRecords' | 'deletedBytes'): number =>
      segments.reduce((sum, segment) => sum + segment[field], 0);
    const views = (await readViewStates(dir)).map(({ name, storage, version, since, bytes, problem }) => ({
      name,
      storage,
      version,
      since,
      bytes,
      problem,
    }));
    return {
      segments,
      records: total('records'),
      bytes: total('bytes'),
      firstOffset,
      lastOffset,
      deletedRecords: total('deletedRecords'),
      deletedBytes: total('deletedBytes'),
      views,
      chain: log.chainAlgorithm,
      encrypted: log.encrypted,
    };
  } finally {
    await log.close();
  }
}

function checkStatOptions(options: unknown): asserts options is StatOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  checkOptionNames(options, ['signal'], 'stat');
  checkSignal((options as StatOptions).signal);
}

export interface FlumeOffsetStatOptions extends StatOptions {
  readonly offsetWidth?: 4 | 6 | 8;
  readonly legacy?: boolean;
}

/**
 * `stat` of a flumelog-offset file, opened read-only: one "segment", the file itself (base 0); deleted records
 * (zeroed payloads, O-6) counted apart.
 */
export async function statFlumeOffset(file: string, options: FlumeOffsetStatOptions = {}): Promise<LogStat> {
  checkFlumeOffsetFileOptions(options, ['signal', 'offsetWidth', 'legacy'], 'statFlumeOffset');
  checkSignal(options.signal);
  const signal = options.signal;
  throwIfAborted(signal, 'stat');
  const log = await FlumeOffsetLog.open(file, {
    readonly: true,
    codec: skipValues,
    ...(options.legacy === true ? { legacy: true } : { offsetWidth: options.offsetWidth ?? 4 }),
  });
  try {
    const lastOffset = log.since;
    let records = 0;
    let firstOffset = -1;
    for await (const record of log.stream({ lte: lastOffset, ...(signal ? { signal } : {}) })) {
      if (firstOffset < 0) firstOffset = record.offset;
      records++;
    }
    const deleted = await log.countDeleted(lastOffset);
    const { size } = await statFile(file);
    const counts = { records, deletedRecords: deleted.records, deletedBytes: deleted.bytes };
    const segments = [{ file: basename(file), base: 0, bytes: size, ...counts }];
    return { segments, ...counts, bytes: size, firstOffset, lastOffset, views: [] };
  } finally {
    await log.close();
  }
}

async function checkAbort(signal: AbortSignal | undefined): Promise<void> {
  // A turn of the event loop now and then, so an abort (a signal handler) can land during a long count.
  await new Promise((resolve) => setImmediate(resolve));
  throwIfAborted(signal, 'stat');
}

import { stat as statFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { skipValues } from '../codec/codec.js';
import { SluiceError } from '../errors.js';
import { FileLog } from '../log/file/file-log.js';
import { FlumeOffsetLog } from '../log/flume-offset/flume-offset-log.js';

/** One segment file of a log. */
export interface SegmentStat {
  /** The file name inside the log directory. */
  readonly file: string;
  /** The offset of the segment's first record. */
  readonly base: number;
  /** The size of the file on disk, header included. */
  readonly bytes: number;
  readonly records: number;
}

/** The shape of a log at one moment. Offsets are `-1` when the log holds no record (as `Log.since` is). */
export interface LogStat {
  readonly segments: SegmentStat[];
  readonly records: number;
  /** The size of all segment files on disk. */
  readonly bytes: number;
  readonly firstOffset: number;
  readonly lastOffset: number;
}

export interface StatOptions {
  /** Aborting ends the scan with a `SluiceError` of code `ABORTED`. */
  readonly signal?: AbortSignal;
}

/**
 * Opens the log in `dir` read-only and streams it once to count its records per segment. The counts are those
 * of the records that existed when the log was opened; a writer may keep appending meanwhile. Fails with
 * `LOG_NOT_FOUND`, `NOT_A_LOG`, `CORRUPT_*` as `FileLog.open` and `stream` do, and `ABORTED`.
 */
export async function stat(dir: string, options: StatOptions = {}): Promise<LogStat> {
  const signal = options.signal;
  if (signal?.aborted === true) throw new SluiceError('ABORTED', 'stat was aborted', { cause: signal.reason });
  const log = await FileLog.open(dir, { readonly: true, codec: skipValues });
  try {
    // Snapshot first: a writer may add records and segments while we scan, and the numbers must agree.
    const bases = [...log.segments.bases];
    const lastOffset = log.since;
    const counts = bases.map(() => 0);
    let firstOffset = -1;
    let index = 0;
    for await (const record of log.stream({ lte: lastOffset, ...(signal ? { signal } : {}) })) {
      if (firstOffset < 0) firstOffset = record.offset;
      while (index + 1 < bases.length && record.offset >= (bases[index + 1] as number)) index++;
      counts[index] = (counts[index] ?? 0) + 1;
    }
    const segments = await Promise.all(
      bases.map(async (base, i) => {
        const path = log.segments.path(base);
        const { size } = await statFile(path);
        return { file: basename(path), base, bytes: size, records: counts[i] ?? 0 };
      }),
    );
    const total = (field: 'bytes' | 'records'): number => segments.reduce((sum, segment) => sum + segment[field], 0);
    return { segments, records: total('records'), bytes: total('bytes'), firstOffset, lastOffset };
  } finally {
    await log.close();
  }
}

export interface FlumeOffsetStatOptions extends StatOptions {
  readonly offsetWidth?: 4 | 6 | 8;
  readonly legacy?: boolean;
}

/**
 * `stat` of a flumelog-offset file, opened read-only: one "segment", the file itself (base 0). Deleted records
 * are not counted.
 */
export async function statFlumeOffset(file: string, options: FlumeOffsetStatOptions = {}): Promise<LogStat> {
  const signal = options.signal;
  if (signal?.aborted === true) throw new SluiceError('ABORTED', 'stat was aborted', { cause: signal.reason });
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
    const { size } = await statFile(file);
    return { segments: [{ file: basename(file), base: 0, bytes: size, records }], records, bytes: size, firstOffset, lastOffset };
  } finally {
    await log.close();
  }
}

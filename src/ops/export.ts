import { lstatSync, statSync, type Stats } from 'node:fs';
import { codecs } from '../codec/codec.js';
import { SluiceError } from '../errors.js';
import { FileLog, type EncryptionOptions } from '../log/file/file-log.js';
import { FlumeOffsetLog } from '../log/flume-offset/flume-offset-log.js';
import { importBatchRecords } from '../limits.js';
import type { ViewProgress } from '../views/runner.js';
import { ProgressMeter } from '../progress/meter.js';
import { checkBatchBytes } from './import.js';
import { checkFlumeOffsetFileOptions } from '../log/open-checks.js';

export interface ExportOptions {
  /** The offset width of the file written (4, 6 or 8; default 4). */
  readonly offsetWidth?: 4 | 6 | 8;
  /** Write the legacy (pre-3.0) format. */
  readonly legacy?: boolean;
  /** Aborting stops the export with `ABORTED`, leaving a partial file of whole records. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: ViewProgress) => void;
  /** The keys of an encrypted log (F-74): the file written holds its records decrypted (the format has no cipher). */
  readonly encryption?: EncryptionOptions;
  /** The mode of the files created (default 0o600, owner only; see `FileLogOptions.fileMode`). */
  readonly fileMode?: number;
  /** Value bytes gathered before each append of the copy (default and largest `importBatchBytes`, 64 MiB). */
  readonly batchBytes?: number;
}

export interface ExportResult {
  readonly records: number;
  /** The size of the file written. */
  readonly bytes: number;
}

const exportOptionNames: ReadonlyArray<keyof ExportOptions> = ['offsetWidth', 'legacy', 'signal', 'onProgress', 'encryption', 'fileMode', 'batchBytes'];

/**
 * Writes the records of the native log in `dir` into a new flumelog-offset file, payload bytes unchanged, in
 * order (offsets change: each format has its own framing). Keys and times are not kept (the format has no place
 * for them). Fails with `INVALID_INPUT` when `file` exists (it is never overwritten) or when a record's value is
 * empty or all zero bytes (the format would read it as deleted); the file is then incomplete and says so.
 */
export async function exportFlumeOffset(dir: string, file: string, options: ExportOptions = {}): Promise<ExportResult> {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string');
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('file must be a non-empty string');
  checkFlumeOffsetFileOptions(options, exportOptionNames, 'exportFlumeOffset');
  // lstat, not exists: a symbolic link (even one pointing nowhere) is a file that exists and is never written through.
  if (lstatOrUndefined(file) !== undefined) throw new SluiceError('INVALID_INPUT', `${file} exists: export writes a new file only`, { file });
  const { signal } = options;
  const batchBytes = checkBatchBytes(options.batchBytes);
  const meter = new ProgressMeter('export', options.onProgress);
  const from = await FileLog.open(dir, {
    readonly: true,
    codec: codecs.raw(),
    ...(options.encryption === undefined ? {} : { encryption: options.encryption }),
  });
  let records = 0;
  try {
    const to = await FlumeOffsetLog.open(file, {
      codec: codecs.raw(),
      // The check above gives the clear error; this closes the window after it (nothing is opened that exists).
      create: 'new',
      ...(options.fileMode === undefined ? {} : { fileMode: options.fileMode }),
      ...(options.legacy === true ? { legacy: true } : { offsetWidth: options.offsetWidth ?? 4 }),
    });
    try {
      const target = from.since;
      let values: Uint8Array[] = [];
      let pendingBytes = 0;
      let last = -1;
      for await (const record of from.stream({ lte: target, ...(signal ? { signal } : {}) })) {
        if (record.value.length === 0 || record.value.every((byte) => byte === 0)) {
          throw new SluiceError(
            'INVALID_INPUT',
            `the record at offset ${record.offset} is empty or all zero bytes: flumelog-offset would read it as deleted`,
            { offset: record.offset, file: dir },
          );
        }
        values.push(record.value);
        pendingBytes += record.value.length;
        last = record.offset;
        if (values.length === importBatchRecords || pendingBytes >= batchBytes) {
          records += (await to.append(values)).length;
          values = [];
          pendingBytes = 0;
          meter.update(last, target, records, last, target);
        }
      }
      if (values.length > 0) records += (await to.append(values)).length;
      await to.sync();
      meter.update(last, target, records, Math.max(target, 0), Math.max(target, 0), true);
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
  return { records, bytes: statSync(file).size };
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

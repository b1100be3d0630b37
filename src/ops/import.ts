import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { codecs, skipValues } from '../codec/codec.js';
import { Sluice } from '../db/sluice.js';
import { SluiceError } from '../errors.js';
import { FileLog, type FileLogOptions } from '../log/file/file-log.js';
import { FlumeOffsetLog } from '../log/flume-offset/flume-offset-log.js';
import { importBatchBytes, importBatchRecords } from '../limits.js';
import { importedOffsetKey, importedOffsets, importedOffsetsViewName } from '../views/imported-offsets.js';
import type { ViewProgress } from '../views/runner.js';
import { ProgressMeter } from '../progress/meter.js';
import { checkFlumeOffsetFileOptions, checkOptionNames } from '../log/open-checks.js';

export interface ImportOptions {
  /** The source's offset width (4, 6 or 8; default 4), as `FlumeOffsetLog.open` takes it. */
  readonly offsetWidth?: 4 | 6 | 8;
  /** The source is in the legacy (pre-3.0) format. */
  readonly legacy?: boolean;
  /** Aborting stops the import with `ABORTED`; what was imported so far stays (the destination is then partial). */
  readonly signal?: AbortSignal;
  /** Called with the progress of the copy (`view: 'import'`) and then of the offsets table (`view: 'flumelog-offsets'`). */
  readonly onProgress?: (progress: ViewProgress) => void;
  /** The new log's security (F-70): tamper-evident, encrypted, as `FileLog.open` takes them. */
  readonly log?: Pick<FileLogOptions<Uint8Array>, 'chain' | 'chainKey' | 'encryption'>;
  /** The mode of the files created (default 0o600, owner only; see `FileLogOptions.fileMode`). */
  readonly fileMode?: number;
  /** Value bytes gathered before each append of the copy (default and largest `importBatchBytes`, 64 MiB). */
  readonly batchBytes?: number;
}

export interface ImportResult {
  /** Records copied (deleted records are not). */
  readonly records: number;
  /** The offset of the last record in the source file and in the new log (`-1` when there is none). */
  readonly lastSourceOffset: number;
  readonly lastOffset: number;
}

/**
 * Converts a flumelog-offset file into a new native log in `dir`: every record that is not deleted, in order,
 * its payload bytes unchanged (whatever codec wrote them), stored with its old offset as the record key
 * (`importedOffsetKey`), and the view `flumelog-offsets` (`importedOffsets()`) built from those keys so old
 * offsets still resolve: `db.use('flumelog-offsets', importedOffsets())`, then `resolve(oldOffset)`. Records get
 * the time of the import (the source stores none). The source is opened read-only and never modified. Fails with
 * `INVALID_INPUT` when `dir` already holds records or a symbolic link (in it or under its `views/`), and with the
 * errors of `FlumeOffsetLog.open` for the source.
 */
export async function importFlumeOffset(source: string, dir: string, options: ImportOptions = {}): Promise<ImportResult> {
  if (typeof source !== 'string' || source.length === 0) throw new TypeError('source must be a non-empty string');
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string');
  // The target is a directory Sluice makes or an empty one the caller made, never a link to elsewhere.
  if (lstatSync(dir, { throwIfNoEntry: false })?.isSymbolicLink() === true) {
    throw new SluiceError('INVALID_INPUT', `${dir} is a symbolic link: import into a new directory`, { file: dir });
  }
  checkFlumeOffsetFileOptions(options, importOptionNames, 'importFlumeOffset');
  checkLogSecurity(options.log);
  refuseLinksInDirectoryAndViews(dir);
  const { signal } = options;
  const batchBytes = checkBatchBytes(options.batchBytes);
  const meter = new ProgressMeter('import', options.onProgress);
  const from = await FlumeOffsetLog.open(source, {
    readonly: true,
    codec: codecs.raw(),
    ...(options.legacy === true ? { legacy: true } : { offsetWidth: options.offsetWidth ?? 4 }),
  });
  let records = 0;
  let lastSourceOffset = -1;
  let lastOffset = -1;
  try {
    const to = await FileLog.open(dir, { ...options.log, codec: codecs.raw(), ...(options.fileMode === undefined ? {} : { fileMode: options.fileMode }) });
    try {
      if (to.since >= 0) throw new SluiceError('INVALID_INPUT', `${dir} already holds a log: import into a new directory`, { file: dir });
      const target = from.since;
      let values: Uint8Array[] = [];
      let keys: Uint8Array[] = [];
      let pendingBytes = 0;
      const flush = async (): Promise<void> => {
        if (values.length === 0) return;
        const offsets = await to.append(values, { key: keys });
        lastOffset = offsets[offsets.length - 1] as number;
        values = [];
        keys = [];
        pendingBytes = 0;
      };
      for await (const record of from.stream({ lte: target, ...(signal ? { signal } : {}) })) {
        values.push(record.value);
        keys.push(importedOffsetKey(record.offset));
        pendingBytes += record.value.length;
        records++;
        lastSourceOffset = record.offset;
        if (values.length === importBatchRecords || pendingBytes >= batchBytes) {
          await flush();
          meter.update(lastSourceOffset, target, records, lastSourceOffset, target);
        }
      }
      await flush();
      await to.sync();
      meter.update(lastSourceOffset, target, records, Math.max(target, 0), Math.max(target, 0), true);
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
  await buildOffsetsTable(dir, options.log ?? {}, options.onProgress, options.fileMode);
  return { records, lastSourceOffset, lastOffset };
}

/**
 * Refuses an import target that holds a symbolic link: any entry of the directory itself, whatever its name, or
 * anything under its `views/`. More than a writer's own refusal of linked segments and journal (`refuseLinks` of
 * segment-files.ts): a log never follows a link to its segments, but the views' state is written under
 * directories that are made with `mkdir -p` and would be written wherever a planted `views` (or a view's
 * directory) points.
 */
function refuseLinksInDirectoryAndViews(dir: string): void {
  const walk = (path: string, deep: boolean): void => {
    let names: string[];
    try {
      names = readdirSync(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw error;
    }
    for (const name of names) {
      const child = join(path, name);
      const info = lstatSync(child, { throwIfNoEntry: false });
      if (info === undefined) continue;
      if (info.isSymbolicLink()) {
        throw new SluiceError('INVALID_INPUT', `${child} is a symbolic link: import into a new directory`, { file: child });
      }
      if (info.isDirectory() && (deep || name === 'views')) walk(child, true);
    }
  };
  walk(dir, false);
}

const importOptionNames: ReadonlyArray<keyof ImportOptions> = ['offsetWidth', 'legacy', 'signal', 'onProgress', 'log', 'fileMode', 'batchBytes'];

/** The new log's options: its security only; the others (`readonly`, `codec`…) are import's own to choose. */
function checkLogSecurity(log: unknown): void {
  if (log === undefined) return;
  if (typeof log !== 'object' || log === null) throw new TypeError('log must be an object { chain?, chainKey?, encryption? }');
  checkOptionNames(log, ['chain', 'chainKey', 'encryption'], 'the log of importFlumeOffset');
}

/** The byte budget of the appends of an import or export: an integer from 1 to `importBatchBytes`. */
export function checkBatchBytes(batchBytes: number | undefined): number {
  if (batchBytes === undefined) return importBatchBytes;
  if (!Number.isSafeInteger(batchBytes) || batchBytes < 1 || batchBytes > importBatchBytes) {
    throw new RangeError(`batchBytes must be an integer from 1 to ${importBatchBytes}`);
  }
  return batchBytes;
}

/** Builds the offsets table now, so the first application read does not wait for it. */
async function buildOffsetsTable(
  dir: string,
  security: NonNullable<ImportOptions['log']>,
  onProgress: ((progress: ViewProgress) => void) | undefined,
  fileMode: number | undefined,
): Promise<void> {
  const mode = fileMode === undefined ? {} : { fileMode };
  // The table needs record keys only: a codec that decodes nothing spares a copy of every value.
  const log = await FileLog.open<null>(dir, { ...security, ...mode, codec: skipValues });
  const db = await Sluice.open<null>(dir, { log, views: { [importedOffsetsViewName]: importedOffsets() }, ...mode });
  if (onProgress !== undefined) db.on('progress', onProgress);
  try {
    await db.ready();
  } finally {
    await db.close();
  }
}

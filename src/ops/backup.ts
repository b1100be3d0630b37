import { chmod, lstat, mkdir, readdir, realpath, rm, unlink } from 'node:fs/promises';
import { createLockFile, lmdbFileProblem } from '../views/lmdb-store.js';
import { fileModeDefault } from '../limits.js';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { skipValues } from '../codec/codec.js';
import { SluiceError } from '../errors.js';
import { operationFailure } from '../log/open-checks.js';
import { readJournalOrNone } from '../log/file/deletes.js';
import { deletesFileName } from '../log/file/segment-files.js';
import { FileLog } from '../log/file/file-log.js';
import { positionOf, segmentName, type Frame } from '../log/file/format.js';
import { FrameReader } from '../log/file/frame-reader.js';
import type { ViewProgress } from '../views/runner.js';
import { check, checkArguments, listLog, operationOptions } from './check.js';
import {
  copyRange,
  copyWhole,
  linkOrCopy,
  refuseExisting,
  regularFile,
  renameIntoPlace,
  syncTree,
  temporaryBeside,
  throwIfAborted,
} from './copy-files.js';
import { ProgressMeter } from '../progress/meter.js';
import { frameStartsIn } from './scan.js';
import { clearViewState, readViewStates } from './view-states.js';

export interface BackupOptions {
  /** Aborting stops the backup with `ABORTED` and removes what it wrote; `dest` is never created then. */
  readonly signal?: AbortSignal;
  /** Progress of the copy, as `view: 'backup'`, in bytes of segment files. */
  readonly onProgress?: (progress: ViewProgress) => void;
  /**
   * Hard-link sealed segments instead of copying them (default `true`; a copy is made anyway across file
   * systems). A link costs no time nor space, but the backup then shares those files with the log: a record
   * deleted in the log afterwards (a delete rewrites the record in place, F-62) is deleted in the backup too.
   * `false` copies every segment (copy-on-write where the file system can).
   */
  readonly link?: boolean;
}

export interface BackupReport {
  readonly dir: string;
  readonly dest: string;
  readonly segments: number;
  /** Sealed segments hard-linked, and segment files copied (the head segment always is). */
  readonly linked: number;
  readonly copied: number;
  /** The size of the backup's segment files, and how much of it was copied rather than linked. */
  readonly bytes: number;
  readonly bytesCopied: number;
  /**
   * The backup's first record that is not deleted (`-1`: none; compaction's fillers and deleted records come
   * before it), its last record, deleted or not, as the log's `since` (`-1`: none), and the offset just past its
   * last record.
   */
  readonly firstOffset: number;
  readonly lastOffset: number;
  readonly end: number;
  /** Views whose state was copied. */
  readonly views: readonly string[];
  /** Views whose state was left out because it was ahead of the snapshot: they rebuild after a restore. */
  readonly viewsDropped: readonly string[];
  readonly durationMs: number;
}

/**
 * Writes a consistent snapshot of the native log in `dir`, with its views' state, into the new directory `dest`,
 * while a writer may go on appending. First each view's state is copied (an LMDB environment through LMDB's own
 * consistent copy, a state file whole); then the log is opened read-only, which fixes the snapshot's end: the
 * end of the last whole batch written, so every append acknowledged before the backup started (in `os` or
 * `disk` durability) is in it. Sealed segments are hard-linked (see `link`) or copied, once each, and the head
 * segment is copied up to that end and synced. Views go first so that none is ahead of the snapshot; one that
 * still is (a writer in `buffered` durability) is left out and rebuilds after a restore.
 *
 * Everything is written into a temporary directory beside `dest` (`.<name>.backup-<pid>-<random>.tmp`), synced,
 * then renamed to `dest`: a backup that fails or is aborted removes it, and a killed one may leave it, but `dest`
 * either does not exist or is complete. Symbolic links are never followed: a segment that is one fails the
 * backup, view files that are one are skipped. `LOCK` and `quarantine/` are not copied; a `DELETES` journal is.
 *
 * Fails with `INVALID_INPUT` when `dest` exists (it is never overwritten), lies inside `dir` (wherever links
 * lead), or its parent directory does not exist; `LOG_NOT_FOUND` / `NOT_A_LOG` for `dir`; the errors of a
 * read-only `FileLog.open` (`CORRUPT_*`); `ABORTED`.
 */
export async function backup(dir: string, dest: string, options: BackupOptions = {}): Promise<BackupReport> {
  checkArguments(dir, options, 'backup', [...operationOptions, 'link']);
  if (typeof dest !== 'string' || dest.length === 0) throw new TypeError('dest must be a non-empty string');
  if (options.link !== undefined && typeof options.link !== 'boolean') throw new TypeError('link must be a boolean');
  const startMs = performance.now();
  try {
    await listLog(dir);
    await checkDestination(dir, dest);
    return await intoPlace(dest, 'backup', async (temporary) => {
      const report = await writeBackup(dir, temporary, options);
      return { dir, dest, ...report, durationMs: Math.round(performance.now() - startMs) };
    });
  } catch (error) {
    throw operationFailure(error, 'backup', dir, false);
  }
}

export interface RestoreOptions {
  /** Aborting stops the restore with `ABORTED` and removes what it wrote; `dir` is never created then. */
  readonly signal?: AbortSignal;
  /** Progress of the copy (`view: 'restore'`), then of the check of the copy (`view: 'check'`). */
  readonly onProgress?: (progress: ViewProgress) => void;
}

export interface RestoreReport {
  readonly backup: string;
  readonly dir: string;
  readonly segments: number;
  readonly bytes: number;
  /** The restored log's first record that is not deleted and its last record, as `BackupReport` has them (`-1`: none). */
  readonly firstOffset: number;
  readonly lastOffset: number;
  readonly views: readonly string[];
  /** Views whose state did not pass the check (ahead of the log, damaged): removed, so they rebuild. */
  readonly viewsCleared: readonly string[];
  readonly durationMs: number;
}

/**
 * Restores the backup in `backupDir` into the new directory `dir`: every segment and view file is copied (never
 * linked: the restored log is written to, and must not write into the backup), synced, and checked with `check`
 * before the temporary directory beside `dir` is renamed to it. So a restored log opens and passes `check`. A
 * view whose state fails the check loses it (it rebuilds); a log that fails it is refused with `CORRUPT_LOG`
 * (naming the first problem), and nothing is created. The backup is not modified.
 *
 * Fails with `INVALID_INPUT` when `dir` exists, lies inside `backupDir`, or its parent directory does not exist;
 * `LOG_NOT_FOUND` / `NOT_A_LOG` for `backupDir`; `CORRUPT_LOG`; `ABORTED`.
 */
export async function restore(backupDir: string, dir: string, options: RestoreOptions = {}): Promise<RestoreReport> {
  checkArguments(backupDir, options, 'restore');
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string');
  try {
    return await restoreBackup(backupDir, dir, options);
  } catch (error) {
    throw operationFailure(error, 'restore', backupDir, false);
  }
}

async function restoreBackup(backupDir: string, dir: string, options: RestoreOptions): Promise<RestoreReport> {
  const startMs = performance.now();
  const listing = await listLog(backupDir);
  await checkDestination(backupDir, dir);
  const { signal } = options;
  return intoPlace(dir, 'restore', async (temporary) => {
    const meter = new ProgressMeter('restore', options.onProgress);
    const sizes = await Promise.all(listing.bases.map(async (base) => (await regularFile(join(backupDir, segmentName(base)))).size));
    const bytesTotal = sizes.reduce((sum, size) => sum + size, 0);
    let bytesDone = 0;
    for (const [i, base] of listing.bases.entries()) {
      const name = segmentName(base);
      await copyRange(join(backupDir, name), join(temporary, name), 0, sizes[i] ?? 0, {
        signal,
        onBytes: (bytes) => {
          bytesDone += bytes;
          meter.update(-1, 0, 0, bytesDone, bytesTotal);
        },
      });
    }
    meter.update(0, 0, 0, bytesDone, bytesTotal, true);
    if (await isFile(join(backupDir, deletesFileName))) {
      await copyWhole(join(backupDir, deletesFileName), join(temporary, deletesFileName));
    }
    const views = await copyViews(backupDir, temporary, signal, false);
    const report = await check(temporary, { ...(signal ? { signal } : {}), ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
    const damage = report.problems.find((problem) => problem.severity === 'error' && problem.kind !== 'view');
    if (damage !== undefined) {
      const file = damage.file.replace(temporary, backupDir);
      throw new SluiceError('CORRUPT_LOG', `the backup does not pass check: ${file}: ${damage.message}`, {
        file,
        position: damage.position,
      });
    }
    const viewsCleared: string[] = [];
    for (const view of report.views) {
      const file = view.file ?? view.dir;
      if (!report.problems.some((problem) => problem.kind === 'view' && problem.file === file)) continue;
      await clearViewState(view);
      viewsCleared.push(view.name);
    }
    return {
      backup: backupDir,
      dir,
      segments: listing.bases.length,
      bytes: bytesTotal,
      // As backup reports it: the first record not deleted (check counts deleted records and fillers too).
      firstOffset: report.firstOffset === -1 ? -1 : await firstRecordKept(temporary),
      lastOffset: report.lastOffset,
      views: views.filter((name) => !viewsCleared.includes(name)),
      viewsCleared,
      durationMs: Math.round(performance.now() - startMs),
    };
  });
}

/**
 * Runs `write` on a new temporary directory beside `destination`, then syncs it and renames it into place; on any
 * failure the temporary directory is removed and `destination` never appears.
 */
async function intoPlace<R>(destination: string, operation: string, write: (temporary: string) => Promise<R>): Promise<R> {
  const temporary = temporaryBeside(destination, operation);
  await mkdir(temporary, { mode: 0o700 });
  try {
    const result = await write(temporary);
    await syncTree(temporary);
    await renameIntoPlace(temporary, destination);
    return result;
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    throw error;
  }
}

type BackupCounts = Omit<BackupReport, 'dir' | 'dest' | 'durationMs'>;

async function writeBackup(dir: string, target: string, options: BackupOptions): Promise<BackupCounts> {
  const { signal } = options;
  const views = await copyViews(dir, target, signal, true);
  const snapshot = await snapshotOf(dir);
  const meter = new ProgressMeter('backup', options.onProgress);
  const bytesTotal = snapshot.sizes.reduce((sum, size) => sum + size, 0);
  const progress = { bytesDone: 0, bytesCopied: 0, linked: 0, copied: 0 };
  const report = (final = false): void =>
    meter.update(final ? snapshot.since : -1, snapshot.since, 0, progress.bytesDone, bytesTotal, final);
  let first = 0;
  for (let i = 0; i < snapshot.bases.length - 1; i++) {
    throwIfAborted(signal, dir);
    const name = segmentName(snapshot.bases[i] as number);
    const size = snapshot.sizes[i] ?? 0;
    let how: 'linked' | 'copied';
    try {
      if (options.link === false) {
        await copyWhole(join(dir, name), join(target, name));
        how = 'copied';
      } else {
        how = await linkOrCopy(join(dir, name), join(target, name));
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      // Retention dropped it since the snapshot, and (oldest first) every segment before it: the backup starts
      // after it, or it would have a gap.
      for (const earlier of snapshot.bases.slice(first, i)) await unlink(join(target, segmentName(earlier)));
      first = i + 1;
      continue;
    }
    progress[how]++;
    if (how === 'copied') progress.bytesCopied += size;
    progress.bytesDone += size;
    report();
  }
  const bases = snapshot.bases.slice(first);
  const head = bases[bases.length - 1];
  if (head !== undefined) {
    await copyRange(join(dir, segmentName(head)), join(target, segmentName(head)), 0, positionOf(head, snapshot.end), {
      signal,
      onBytes: (bytes) => {
        progress.bytesDone += bytes;
        progress.bytesCopied += bytes;
        report();
      },
    });
    progress.copied++;
  }
  // After the segments: a deletion in progress while they were taken is then finished by the first open.
  if (await isFile(join(dir, deletesFileName))) await copyWhole(join(dir, deletesFileName), join(target, deletesFileName));
  report(true);
  const viewsDropped = await dropViewsAhead(target, bases, snapshot);
  const firstOffset = bases[0] !== undefined && snapshot.end > bases[0] ? await firstRecordKept(target) : -1;
  return {
    segments: bases.length,
    linked: progress.linked,
    copied: progress.copied,
    bytes: snapshot.sizes.slice(first).reduce((sum, size) => sum + size, 0),
    bytesCopied: progress.bytesCopied,
    firstOffset,
    lastOffset: snapshot.since,
    end: snapshot.end,
    views: views.filter((name) => !viewsDropped.includes(name)),
    viewsDropped,
  };
}

interface Snapshot {
  readonly bases: readonly number[];
  /** Bytes of each segment in the backup: whole sealed files, the head up to `end`. */
  readonly sizes: readonly number[];
  readonly end: number;
  readonly since: number;
}

/** The log as a read-only open sees it: its segments (none for an empty log), and the end of its last whole batch. */
async function snapshotOf(dir: string): Promise<Snapshot> {
  // Bytes are copied as they are: an encrypted log is backed up without its key, which never reaches the backup.
  const log = await FileLog.open(dir, { readonly: true, codec: skipValues, withoutKey: true });
  try {
    const segments = log.segments;
    const bases = segments.bases.filter((base) => base >= segments.first);
    const end = segments.end;
    const sizes = bases.map((base, i) => positionOf(base, i + 1 < bases.length ? (bases[i + 1] as number) : end));
    return { bases, sizes, end, since: log.since };
  } finally {
    await log.close();
  }
}

/**
 * The offset of the first record of the log in `dir` that is not deleted, or `-1`. The first segment's base is not
 * it once compaction covered the records there with a filler or a record there was deleted (F-62, F-64). Frames
 * are walked, never decoded, since an encrypted log is backed up without its key; the copy is walked rather than
 * the log, so that segments retention dropped during the backup are not counted, and a deletion in progress in the
 * copied journal counts as done (its first open finishes it). A frame that cannot be read ends the walk there:
 * the backup copies bytes and is no check, and a damaged record was not deleted as far as it can tell.
 */
async function firstRecordKept(dir: string): Promise<number> {
  const log = await FileLog.open(dir, { readonly: true, codec: skipValues, withoutKey: true });
  try {
    const segments = log.segments;
    const reader = new FrameReader(segments);
    // A deletion journaled but not yet rewritten (a crash between the two) is done at the backup's first open.
    const journaled = new Set(readJournalOrNone(dir));
    for (let index = segments.firstIndex; index < segments.bases.length; index++) {
      const end = segments.endOf(index);
      for (let offset = segments.bases[index] as number; offset < end; ) {
        let frame: Frame | string;
        try {
          frame = reader.tryAt(index, offset, true);
        } catch {
          return offset;
        }
        if (typeof frame === 'string' || (!frame.deleted && !journaled.has(offset))) return offset;
        offset += frame.size;
      }
    }
    return -1;
  } finally {
    await log.close();
  }
}

/**
 * Copies `<from>/views/*` into `<to>/views/`: an LMDB environment through LMDB's consistent copy when `live` (a
 * writer may be committing), plain files otherwise. LMDB's `-lock` files, `.tmp` files and symbolic links are left
 * out. Returns the names of the views copied.
 */
async function copyViews(from: string, to: string, signal: AbortSignal | undefined, live: boolean): Promise<string[]> {
  const source = join(from, 'views');
  let names: string[];
  try {
    names = (await readdir(source)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const copied: string[] = [];
  await mkdir(join(to, 'views'), { mode: 0o700 });
  for (const name of names) {
    throwIfAborted(signal, source);
    if (!(await lstat(join(source, name))).isDirectory()) continue;
    await copyViewDirectory(join(source, name), join(to, 'views', name), live);
    copied.push(name);
  }
  return copied;
}

async function copyViewDirectory(from: string, to: string, live: boolean): Promise<void> {
  await mkdir(to, { mode: 0o700 });
  for (const name of (await readdir(from)).sort()) {
    const path = join(from, name);
    const info = await lstat(path);
    if (info.isDirectory()) await copyViewDirectory(path, join(to, name), live);
    // `.unsynced` (F-99): the copy of an environment is a consistent snapshot, which must not be rebuilt.
    if (!info.isFile() || name.endsWith('-lock') || name.endsWith('.tmp') || name.endsWith('.unsynced')) continue;
    // A cut-short environment would crash this process inside LMDB; it is derived, so the copy leaves it out and
    // the restored view rebuilds.
    if (name.endsWith('.mdb') && lmdbFileProblem(path) !== undefined) continue;
    if (live && name.endsWith('.mdb')) await copyEnvironment(path, join(to, name));
    else await copyWhole(path, join(to, name));
  }
}

/** LMDB's own copy (`mdb_env_copy`): consistent while another process commits. */
async function copyEnvironment(from: string, to: string): Promise<void> {
  createLockFile(from);
  const root = openLmdb({ path: from, readOnly: true, compression: false });
  try {
    await root.backup(to, false);
    // LMDB creates the copy with mode 0666 less the umask.
    await chmod(to, fileModeDefault);
  } finally {
    await root.close();
  }
}

/**
 * Leaves out of the backup the state of views that are ahead of the snapshot, or whose `since` is not a record of
 * it, or that cannot be read: restored, they would only be rebuilt.
 */
async function dropViewsAhead(target: string, bases: readonly number[], snapshot: Snapshot): Promise<string[]> {
  const dropped: string[] = [];
  for (const view of await readViewStates(target)) {
    const since = view.since;
    let keep = view.problem === null && (since === null || since <= snapshot.since);
    if (keep && since !== null && since >= (bases[0] as number)) {
      let index = 0;
      while (index + 1 < bases.length && (bases[index + 1] as number) <= since) index++;
      const base = bases[index] as number;
      const end = index + 1 < bases.length ? (bases[index + 1] as number) : snapshot.end;
      keep = frameStartsIn(join(target, segmentName(base)), base, end, since);
    }
    if (keep) continue;
    await rm(view.dir, { recursive: true, force: true });
    dropped.push(view.name);
  }
  return dropped;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isFile();
  } catch {
    return false;
  }
}

/** A destination must be new, outside the source directory, in a directory that exists. */
async function checkDestination(source: string, destination: string): Promise<void> {
  await refuseExisting(destination);
  const parent = await lstat(dirname(resolve(destination))).catch(() => undefined);
  if (parent?.isDirectory() !== true) {
    throw new SluiceError('INVALID_INPUT', `the directory of ${destination} does not exist`, { file: destination });
  }
  // Where the paths lead, not how they are spelled: a source named through a link (or a destination under a
  // linked ancestor) is the same directory as the one the link names.
  const real = await realpath(source).catch(() => resolve(source));
  const target = join(await realpath(dirname(resolve(destination))), basename(resolve(destination)));
  const inside = relative(real, target);
  if (inside === '' || (inside !== '..' && !inside.startsWith(`..${sep}`) && !isAbsolute(inside))) {
    throw new SluiceError('INVALID_INPUT', `${destination} lies inside ${source}: choose a path outside it`, { file: destination });
  }
}

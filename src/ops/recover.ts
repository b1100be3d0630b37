import { closeSync, openSync, readSync } from 'node:fs';
import { lstat, mkdir, open, rename } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isSluiceError } from '../errors.js';
import { operationFailure } from '../log/open-checks.js';
import { readJournal } from '../log/file/deletes.js';
import { DirectoryLock } from '../log/file/directory-lock.js';
import { decodeHeader, headerBytes, positionOf, type HeaderSecurity } from '../log/file/format.js';
import { createSegment, deletesFileName, removeTemporary, syncDirectory } from '../log/file/segment-files.js';
import type { ViewProgress } from '../views/runner.js';
import { checkArguments, listLog, logProblems, viewProblems, type CheckProblem } from './check.js';
import { copyRange } from './copy-files.js';
import { ProgressMeter } from '../progress/meter.js';
import { recordStartsAt, scanLog, type LogScan, type SegmentScan } from './scan.js';
import { clearViewState, readViewStates, type ViewState } from './view-states.js';

export interface RecoverOptions {
  /** Aborting stops the pass over the log with `ABORTED`; once repairs begin they run to the end. */
  readonly signal?: AbortSignal;
  /** Progress of the pass over the segments, as `view: 'recover'`. */
  readonly onProgress?: (progress: ViewProgress) => void;
}

/** Bytes cut from the end of a segment that stays, and where they were kept. */
export interface RecoverCut {
  readonly file: string;
  /** Where the segment now ends (the first byte cut). */
  readonly position: number;
  readonly bytes: number;
  /** The file in `quarantine/` holding the bytes cut. */
  readonly quarantine: string;
}

/** A segment moved into `quarantine/` whole. */
export interface RecoverRemoval {
  readonly file: string;
  readonly quarantine: string;
}

/** A view whose state `recover` removed, so that it rebuilds. */
export interface RecoverClearedView {
  readonly name: string;
  readonly reason: string;
  readonly files: readonly string[];
}

export interface RecoverReport {
  readonly dir: string;
  /** What the pass found before repairing: the log's problems and the views', as `check` reports them. */
  readonly problems: readonly CheckProblem[];
  /** Whether anything was changed. */
  readonly changed: boolean;
  /** The recovered log: its last record (`-1`: none), the offset just past it, its record count. */
  readonly lastOffset: number;
  readonly end: number;
  readonly records: number;
  readonly cuts: readonly RecoverCut[];
  readonly removedSegments: readonly RecoverRemoval[];
  /** Leftover `.seg.tmp` files removed (F-20). */
  readonly temporaryRemoved: readonly string[];
  readonly viewsCleared: readonly RecoverClearedView[];
}

/**
 * Repairs the native log in `dir` by cutting it back to its longest valid prefix: whole batches from the first
 * segment up to the first damaged header or record, gap between segments, or incomplete batch (the pass of
 * `check`). Nothing is deleted: the bytes cut from the segment where the prefix ends go to
 * `quarantine/<segment>.<position>.<ms>.torn` (as the open's torn-write cut does, F-42), and every later segment
 * is moved there whole (`<segment>.0.<ms>.torn`), so records after damage are kept for people, not for the log.
 * A segment whose file is shared with a backup (hard-linked) is rewritten rather than truncated, so the backup
 * keeps its bytes; so is one that becomes the last segment, which the writer appends to. When no segment can be kept, an empty one is created at the first base, so offsets go on.
 *
 * Views: the state of every view that is damaged, ahead of the recovered log, or whose `since` is not a record of
 * it is removed (the state file, or the LMDB environment); a view without state rebuilds from the start of the
 * log when it is next used. This happens before the log is cut, so an interrupted recover leaves no view ahead.
 *
 * Takes the writer's lock for the whole run: `LOCKED` when a writer holds it. `LOG_NOT_FOUND` / `NOT_A_LOG` (then
 * nothing is created or modified) as `FileLog.open`; `ABORTED` during the pass (nothing modified). A recover that
 * is killed leaves a log that opens, with every byte either in it or in `quarantine/`; run it again to finish.
 */
export async function recover(dir: string, options: RecoverOptions = {}): Promise<RecoverReport> {
  checkArguments(dir, options, 'recover');
  try {
    return await recoverLog(dir, options);
  } catch (error) {
    throw operationFailure(error, 'recover', dir, false);
  }
}

async function recoverLog(dir: string, options: RecoverOptions): Promise<RecoverReport> {
  const meter = new ProgressMeter('recover', options.onProgress);
  await listLog(dir);
  const lock = DirectoryLock.acquire(dir);
  try {
    // Listed again under the lock: no writer can change anything from here on.
    const listing = await listLog(dir);
    const views = await readViewStates(dir);
    // Records half rewritten by an interrupted deletion (F-63) are records, not damage: the next open finishes them.
    const erasing = new Set(await readOrQuarantineJournal(dir));
    const scan = await scanLog(dir, listing.bases, { signal: options.signal, meter, operation: 'recover', erasing });
    const problems = [...logProblems(scan, false), ...viewProblems(views, scan)];
    // From here on the signal is not looked at: a repair stopped half-way helps nobody.
    const viewsCleared = await clearViews(views, scan);
    // Leftovers first: a cut of a hard-linked segment writes `<segment>.tmp` afresh, which one left by an earlier
    // recover killed half-way must not block.
    await removeTemporary(dir, listing.temporary);
    if (listing.temporary.length > 0) await syncDirectory(dir);
    const { cuts, removedSegments } = await cutToPrefix(dir, scan);
    const temporaryRemoved = listing.temporary.map((name) => join(dir, name));
    const changed = cuts.length + removedSegments.length + temporaryRemoved.length + viewsCleared.length > 0;
    const { prefix } = scan;
    return {
      dir,
      problems,
      changed,
      lastOffset: prefix.since,
      end: prefix.end,
      records: prefix.records,
      cuts,
      removedSegments,
      temporaryRemoved,
      viewsCleared,
    };
  } finally {
    lock.release();
  }
}

/** Removes the state of views that the recovered log does not support. */
async function clearViews(views: readonly ViewState[], scan: LogScan): Promise<RecoverClearedView[]> {
  const cleared: RecoverClearedView[] = [];
  const since = scan.prefix.since;
  for (const view of views) {
    let reason: string | undefined;
    if (view.problem !== null) reason = view.problem;
    else if (view.since !== null && view.since > since) reason = `its since ${view.since} is past the recovered log's last record ${since}`;
    else if (view.since !== null && view.since >= 0 && recordStartsAt(scan, view.since) === false) {
      reason = `its since ${view.since} is not a record`;
    }
    if (reason !== undefined) cleared.push({ name: view.name, reason, files: await clearViewState(view) });
  }
  return cleared;
}

/**
 * Cuts the segments to the valid prefix. Order matters for a kill at any moment: the quarantine copy of a tail is
 * complete before the segment is shortened, and the segments after the prefix are moved oldest first after
 * that, so the newest segment (the one an open checks) is always one whose end is whole.
 */
async function cutToPrefix(dir: string, scan: LogScan): Promise<{ cuts: RecoverCut[]; removedSegments: RecoverRemoval[] }> {
  const { segments, prefix } = scan;
  const quarantine = join(dir, 'quarantine');
  const cuts: RecoverCut[] = [];
  const removedSegments: RecoverRemoval[] = [];
  const kept = segments.slice(0, prefix.lastSegment + 1);
  const removed = segments.slice(prefix.lastSegment + 1).filter((segment) => segment.fileBytes >= 0);
  const cutsToMake: Array<{ segment: SegmentScan; position: number }> = [];
  kept.forEach((segment, i) => {
    // A sealed segment may only hold its own offsets; the one where the prefix ends stops at the prefix's end.
    const end = i === kept.length - 1 ? prefix.end : (kept[i + 1] as SegmentScan).base;
    const position = positionOf(segment.base, end);
    if (position < segment.fileBytes) cutsToMake.push({ segment, position });
  });
  if (cutsToMake.length === 0 && removed.length === 0) return { cuts, removedSegments };
  // F-70: an empty log left behind keeps the chain and cipher of the log (read before its segments move away),
  // from the newest header still readable: the first one may be the damage, and a plain header in its place would
  // let the log's next records be written unencrypted.
  const security = kept.length === 0 ? securityOfAny(segments) : undefined;
  await mkdir(quarantine, { recursive: true, mode: 0o700 });
  for (const { segment, position } of cutsToMake) cuts.push(await cutSegment(segment, position, quarantine));
  // The segments after the prefix go away, so the last one kept becomes the one the writer appends to and erases
  // in place. Sealed, a backup may have hard-linked it: the writer would then write into the backup. It gets a
  // file of its own first (before the moves, so that a kill in between never leaves a shared segment last).
  const head = kept[kept.length - 1];
  if (head !== undefined && removed.length > 0 && !cutsToMake.some((cut) => cut.segment === head)) await unshare(head);
  for (const segment of removed) {
    const target = await quarantineName(quarantine, basename(segment.path), 0);
    await rename(segment.path, target);
    removedSegments.push({ file: segment.path, quarantine: target });
  }
  await syncDirectory(quarantine);
  const firstBase = segments[0]?.base;
  // Nothing readable is left: an empty segment at the first base keeps offsets from going back to 0. Unless no
  // header could be read and that base is 0: a header made up here would have to guess the log's chain and cipher
  // (plain, for an encrypted log, would let its next records be written in the clear), while no segment at all
  // loses nothing, and the next writable open creates the log with its own options.
  if (kept.length === 0 && firstBase !== undefined && !(security === undefined && firstBase === 0)) {
    closeSync(await createSegment(dir, firstBase, security));
  }
  await syncDirectory(dir);
  return { cuts, removedSegments };
}

/** The security fields of the newest segment header that can be read and is valid; `undefined` when none is. */
function securityOfAny(segments: readonly SegmentScan[]): HeaderSecurity | undefined {
  for (let i = segments.length - 1; i >= 0; i--) {
    const security = securityOf((segments[i] as SegmentScan).path);
    if (security !== undefined) return security;
  }
  return undefined;
}

/** The security fields of a segment's header, when it can be read and is valid (else a plain header is made). */
function securityOf(path: string): HeaderSecurity | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const header = Buffer.alloc(headerBytes);
    const decoded = decodeHeader(header.subarray(0, readSync(fd, header, 0, headerBytes, 0)));
    return typeof decoded === 'string' ? undefined : decoded.security;
  } finally {
    closeSync(fd);
  }
}

/** Copies the bytes of `segment` from `position` on into quarantine (synced), then cuts them off the segment. */
async function cutSegment(segment: SegmentScan, position: number, quarantine: string): Promise<RecoverCut> {
  const target = await quarantineName(quarantine, basename(segment.path), position);
  const partial = `${target}.tmp`;
  await copyRange(segment.path, partial, position, segment.fileBytes);
  await rename(partial, target);
  await syncDirectory(quarantine);
  const { nlink } = await lstat(segment.path);
  if (nlink > 1) {
    // The file is also a backup's (hard-linked): truncating it would cut the backup too.
    await rewriteAlone(segment.path, position);
  } else {
    const handle = await open(segment.path, 'r+');
    try {
      await handle.truncate(position);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  return { file: segment.path, position, bytes: segment.fileBytes - position, quarantine: target };
}

/** A segment file that is also linked elsewhere (a backup's) is replaced by a copy of its own, whole. */
async function unshare(segment: SegmentScan): Promise<void> {
  const { nlink, size } = await lstat(segment.path);
  if (nlink > 1) await rewriteAlone(segment.path, size);
}

/**
 * Replaces the file at `path` with a new one holding its first `bytes` bytes, leaving the other links of the old
 * file as they were. Written under F-20's temporary name, so an open removes it if we are killed, then renamed over.
 */
async function rewriteAlone(path: string, bytes: number): Promise<void> {
  const rewritten = `${path}.tmp`;
  await copyRange(path, rewritten, 0, bytes);
  await rename(rewritten, path);
}

/** `<segment>.<position>.<ms>.torn` in quarantine (F-42), made unique should two cuts land in one millisecond. */
async function quarantineName(quarantine: string, segment: string, position: number): Promise<string> {
  const stem = `${segment}.${position}.${Date.now()}`;
  for (let attempt = 0; ; attempt++) {
    const path = join(quarantine, `${stem}${attempt === 0 ? '' : `-${attempt}`}.torn`);
    try {
      await lstat(path);
    } catch {
      return path;
    }
  }
}

/**
 * The journal's offsets; a journal too large to be one (F-97) is moved into `quarantine/` instead, so the log
 * opens again (its deletions, if any were real, are lost with it: their records stay readable).
 */
async function readOrQuarantineJournal(dir: string): Promise<number[]> {
  try {
    return readJournal(dir);
  } catch (error) {
    if (!isSluiceError(error, 'CORRUPT_LOG')) throw error;
    const quarantine = join(dir, 'quarantine');
    await mkdir(quarantine, { recursive: true, mode: 0o700 });
    await rename(join(dir, deletesFileName), await quarantineName(quarantine, deletesFileName, 0));
    await syncDirectory(quarantine);
    await syncDirectory(dir);
    return [];
  }
}

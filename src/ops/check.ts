import { join } from 'node:path';
import { checkSignal, isSluiceError, SluiceError } from '../errors.js';
import { operationFailure } from '../log/open-checks.js';
import { checkProblemsMax } from '../limits.js';
import { readJournal } from '../log/file/deletes.js';
import { lockFileName } from '../log/file/directory-lock.js';
import { offsetAt, positionOf, segmentName } from '../log/file/format.js';
import { listDirectory, type DirectoryListing } from '../log/file/segment-files.js';
import type { ViewProgress } from '../views/runner.js';
import { readLockStatus, type LockStatus } from './lock-status.js';
import { ProgressMeter } from '../progress/meter.js';
import { recordStartsAt, scanLog, type LogScan, type SegmentScan } from './scan.js';
import { readViewStates, type ViewState } from './view-states.js';
import { checkWorkers, verifyChain, type ChainVerification } from './verify-chain.js';
import { checkChainKey } from '../log/file/security/keys.js';
import { checkOptionNames } from '../log/open-checks.js';

/** What a problem is about. */
export type CheckProblemKind =
  /** A segment header is invalid (F-6, F-7): the segment and everything after it cannot be read. */
  | 'header'
  /** A record's frame is invalid where a record must start: framing, offset or checksum (F-12). */
  | 'record'
  /** A sealed segment ends inside a batch (a batch never spans segments, F-13). */
  | 'batch'
  /** A segment's size disagrees with the next segment's base (F-8): truncated, or longer than it may be. */
  | 'continuity'
  /** No segment holds a range of offsets between two segments: a segment file is missing. */
  | 'missing-segment'
  /** The last segment ends with a torn write or an incomplete batch (F-40 rows 3, 4); cut on the next open. */
  | 'tail'
  /** The `LOCK` file names a process that no longer runs, or no process at all (F-30). */
  | 'lock'
  /** A `.seg.tmp` file of an interrupted segment creation (F-20). */
  | 'temporary'
  /** A record whose deletion a crash interrupted (F-63): half rewritten; the next writable open finishes it. */
  | 'delete'
  /** A view's stored state is damaged, ahead of the log, or not at a record (F-50, F-52). */
  | 'view'
  /**
   * With `verifyChain`: the first broken link of a tamper-evident log (F-77), a log that is not chained, or a
   * published head that no record's link matches.
   */
  | 'chain';

/** One thing `check` found. */
export interface CheckProblem {
  /**
   * `error`: data is damaged or inconsistent: records cannot be read, or a view's state disagrees with the log
   * (`recover` repairs it). `warning`: what a crash leaves and Sluice repairs by itself on the next writable
   * open (a torn tail, a stale lock, a leftover temporary file); nothing acknowledged is lost.
   */
  readonly severity: 'error' | 'warning';
  readonly kind: CheckProblemKind;
  /** The file concerned (for a missing segment: the name it should have). */
  readonly file: string;
  /** The byte position in `file`; `0` when the problem is the whole file. */
  readonly position: number;
  /** The log offset concerned, or `null`. */
  readonly offset: number | null;
  /** What is wrong, for people. */
  readonly message: string;
}

/** The outcome of `check`. Offsets describe the longest valid prefix of the log: what `recover` would keep. */
export interface CheckReport {
  readonly dir: string;
  /** No problem of severity `error`. */
  readonly healthy: boolean;
  readonly errors: number;
  readonly warnings: number;
  /** The problems in log order (segments, then the lock and temporary files, then views); at most `checkProblemsMax`. */
  readonly problems: readonly CheckProblem[];
  /** Problems found beyond `checkProblemsMax`, counted only. */
  readonly problemsOmitted: number;
  readonly segments: number;
  /** Valid frames read (damaged stretches skipped), deleted records and compaction's fillers included. */
  readonly records: number;
  /** Bytes of segment files read. */
  readonly bytes: number;
  /**
   * The first and last frame of the longest valid prefix (deleted records and compaction's fillers count, as in
   * `records`: the first is the first segment's base, the log's `firstOffset`); `-1` when it holds none. `stat`
   * and `backup` give the first record that is not deleted instead.
   */
  readonly firstOffset: number;
  readonly lastOffset: number;
  /**
   * `running`: a writer held the lock during the check, so bytes after the last whole batch of the last segment
   * were taken as a write in flight, not reported; `stale`: the lock's process is gone; `none`: no lock.
   */
  readonly writer: 'none' | 'running' | 'stale';
  readonly views: readonly ViewState[];
  /** With `verifyChain`: what the chain proved (F-77); otherwise `null`. */
  readonly chain: ChainVerification | null;
  readonly durationMs: number;
}

export interface CheckOptions {
  /** Aborting stops the check with `ABORTED` (between chunks of a few MiB). */
  readonly signal?: AbortSignal;
  /** Progress of the pass over the segments, as `view: 'check'`. */
  readonly onProgress?: (progress: ViewProgress) => void;
  /**
   * Also recompute the chain of a tamper-evident log (F-77): every record's digest and link, reporting the first
   * broken link as a `chain` problem. A log that is not chained is then an error too.
   */
  readonly verifyChain?: boolean;
  /** With `verifyChain`: a head published earlier (64 hex digits); an error when no record's link is this one. */
  readonly head?: string;
  /** With `verifyChain`: the key of a keyed chain (F-72), without which it cannot be verified. */
  readonly chainKey?: Uint8Array;
  /** With `verifyChain`: the worker threads that check digests meanwhile (`VerifyChainOptions.workers`). */
  readonly workers?: number;
}

/**
 * Verifies the native log in `dir` without modifying it: every segment header (F-6, F-7); every record's framing,
 * offset and checksum (F-12), read in chunks of `checkChunkBytes`; that segments follow each other without a gap
 * (F-8); that sealed segments end with a whole batch and how the last one ends (F-40); the `LOCK` file (F-30);
 * and each view's state under `views/` (F-50, F-52): readable, not ahead of the log, its `since` a record.
 *
 * A writer may append meanwhile: each segment is read up to its size when opened, views are read before the log
 * (so a running writer's views never look ahead of it), and with the lock held by a running process, bytes
 * after the last whole batch are a write in flight rather than a torn tail. Records a writer in `buffered`
 * durability acknowledged but has not written yet are not seen.
 *
 * Fails (rather than reporting) with `LOG_NOT_FOUND` when `dir` does not exist, `NOT_A_LOG` when it is not a
 * directory or holds files but no segment, `ABORTED`, and `READ_FAILED` on an I/O error. An empty directory is an
 * empty, healthy log. Opening a view's LMDB environment read-only may create LMDB's `-lock` file beside it.
 */
export async function check(dir: string, options: CheckOptions = {}): Promise<CheckReport> {
  checkArguments(dir, options, 'check', [...operationOptions, ...checkOnlyOptions]);
  try {
    return await checkLog(dir, options);
  } catch (error) {
    throw operationFailure(error, 'check', dir, true);
  }
}

async function checkLog(dir: string, options: CheckOptions): Promise<CheckReport> {
  const startMs = performance.now();
  const meter = new ProgressMeter('check', options.onProgress);
  await listLog(dir);
  const lock = readLockStatus(dir);
  const views = await readViewStates(dir);
  const listing = await listLog(dir);
  const journal = readJournalProblem(dir);
  const erasing = new Set(typeof journal === 'object' && !Array.isArray(journal) ? [] : journal);
  const scan = await scanLog(dir, listing.bases, { signal: options.signal, meter, operation: 'check', erasing });
  const writerAlive = lock.state === 'held';
  const chain = options.verifyChain === true ? await verifyChain(dir, listing.bases, options) : null;
  const found = [
    ...logProblems(scan, writerAlive),
    ...(chain === null ? [] : chainProblems(dir, chain, options.head)),
    ...lockProblems(dir, lock),
    ...(Array.isArray(journal) ? [] : [journal]),
    ...(writerAlive ? [] : listing.temporary.map((name) => temporaryProblem(dir, name))),
    ...viewProblems(views, scan),
  ];
  const problems = found.slice(0, checkProblemsMax);
  const errors = found.filter((problem) => problem.severity === 'error').length;
  const { prefix } = scan;
  return {
    dir,
    healthy: errors === 0,
    errors,
    warnings: found.length - errors,
    problems,
    problemsOmitted: found.length - problems.length,
    segments: scan.segments.length,
    records: scan.records,
    bytes: scan.bytes,
    firstOffset: prefix.records > 0 ? (scan.segments[0] as SegmentScan).base : -1,
    lastOffset: prefix.since,
    writer: lock.state === 'held' ? 'running' : lock.state === 'stale' ? 'stale' : 'none',
    views,
    chain,
    durationMs: Math.round(performance.now() - startMs),
  };
}

/** F-77: what a chain verification found wrong, as problems. */
function chainProblems(dir: string, chain: ChainVerification, head: string | undefined): CheckProblem[] {
  if (chain.algorithm === null) {
    if (chain.broken !== null) return [error('chain', chain.broken.file, chain.broken.position, null, chain.broken.message)];
    return [error('chain', dir, 0, null, 'the log is not chained (it was not created tamper-evident)')];
  }
  const problems: CheckProblem[] = [];
  const broken = chain.broken;
  if (broken !== null) problems.push(error('chain', broken.file, broken.position, broken.offset, broken.message));
  if (head !== undefined && chain.publishedHeadOffset === null) {
    problems.push(error('chain', dir, 0, null, `no record's link is the published head ${head}: the log does not contain what it was`));
  }
  return problems;
}

/** What every operation on a directory takes; `check` takes `checkOnlyOptions` too. */
export const operationOptions = ['signal', 'onProgress'] as const;
const checkOnlyOptions = ['verifyChain', 'head', 'chainKey', 'workers'] as const;

/**
 * Validates the arguments of an operation on a directory (programmer mistakes); `operation` names it, and
 * `optionNames` are the options it takes (another's, such as `check`'s `verifyChain` given to `recover`, would be
 * dropped without a word).
 */
export function checkArguments(
  dir: unknown,
  options: unknown,
  operation: string,
  optionNames: readonly string[] = operationOptions,
): asserts dir is string {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string');
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  checkOptionNames(options, optionNames, operation);
  const { signal, onProgress } = options as CheckOptions;
  checkSignal(signal);
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new TypeError('onProgress must be a function');
  const { verifyChain: verify, head, chainKey, workers } = options as CheckOptions;
  if (chainKey !== undefined) checkChainKey(chainKey);
  if (verify !== undefined && typeof verify !== 'boolean') throw new TypeError('verifyChain must be a boolean');
  if (workers !== undefined) checkWorkers(workers);
  if (head !== undefined && (typeof head !== 'string' || !/^[0-9a-f]{64}$/i.test(head))) {
    throw new TypeError('head must be 64 hexadecimal digits');
  }
  // These only steer the chain's verification: without it a head would be silently left unchecked.
  for (const [name, value] of [['head', head], ['chainKey', chainKey], ['workers', workers]] as const) {
    if (value !== undefined && verify !== true) throw new TypeError(`${name} goes with verifyChain: true`);
  }
}

/** Lists a log directory, refusing what is not a log (F-8) the way `FileLog.open` does. */
export async function listLog(dir: string): Promise<DirectoryListing> {
  const listing = await listDirectory(dir);
  if (listing === undefined) throw new SluiceError('LOG_NOT_FOUND', `there is no log at ${dir}`, { file: dir });
  if (listing.bases.length === 0 && listing.foreign.length > 0) {
    throw new SluiceError('NOT_A_LOG', `${dir} holds files that are not a Sluice log (${listing.foreign[0]}, …)`, { file: dir });
  }
  return listing;
}

/** The problems of the segments: headers, records, batches, continuity, and the tail (F-40) of the last one. */
export function logProblems(scan: LogScan, writerAlive: boolean): CheckProblem[] {
  const problems: CheckProblem[] = [];
  const segments = scan.segments;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as SegmentScan;
    const next = segments[i + 1];
    const last = next === undefined;
    if (segment.fileBytes < 0) {
      problems.push(error('missing-segment', segment.path, 0, segment.base, 'the segment was listed but vanished before it was read'));
      continue;
    }
    if (segment.headerProblem !== undefined) {
      const { message, position } = segment.headerProblem;
      problems.push(error('header', segment.path, position ?? 0, segment.base, `${message}: its records are not read`));
    } else if (last) {
      problems.push(...tailProblems(segment, writerAlive));
    } else {
      problems.push(...sealedProblems(scan, segment, writerAlive));
    }
    if (!writerAlive) problems.push(...segment.erasing.map((offset) => deleteProblem(segment, offset)));
    if (next !== undefined) {
      const continuity = continuityProblem(scan.dir, segment, next.base);
      if (continuity !== undefined) problems.push(continuity);
    }
  }
  return problems;
}

function sealedProblems(scan: LogScan, segment: SegmentScan, writerAlive: boolean): CheckProblem[] {
  // A running writer may have been rewriting a record it deletes (F-62) as we read it: damage that is gone when
  // read again was such a rewrite. Damage on disk reads the same every time.
  const damages = writerAlive ? segment.damages.filter((damage) => recordStartsAt(scan, damage.offset) !== true) : segment.damages;
  const problems = damages.map((damage) =>
    error('record', segment.path, damage.position, damage.offset, `${damage.reason}${resumption(segment, damage.resumesAt)}`),
  );
  if (segment.endsInsideBatch) {
    const position = positionOf(segment.base, segment.scanEnd);
    problems.push(
      error('batch', segment.path, position, segment.scanEnd, 'the sealed segment ends inside a batch (a batch never spans segments)'),
    );
  }
  return problems;
}

/**
 * The last segment (F-40): damage followed by valid records is damage (row 5); a tail that is not whole records,
 * or a last batch without its end, is what a crash leaves (rows 3, 4), unless a running writer is writing it.
 */
function tailProblems(segment: SegmentScan, writerAlive: boolean): CheckProblem[] {
  const resumed = segment.damages.some((damage) => damage.resumesAt !== undefined);
  if (resumed) {
    return segment.damages.map((damage) =>
      error('record', segment.path, damage.position, damage.offset, `${damage.reason}${resumption(segment, damage.resumesAt)}`),
    );
  }
  const torn = segment.damages.length > 0 || segment.endsInsideBatch;
  if (!torn || writerAlive) return [];
  const position = positionOf(segment.base, segment.batchEnd);
  const bytes = segment.fileBytes - position;
  const what = segment.damages.length > 0 ? `not whole records (${segment.damages[0]?.reason})` : 'an incomplete batch';
  return [
    {
      severity: 'warning',
      kind: 'tail',
      file: segment.path,
      position,
      offset: segment.batchEnd,
      message: `the last ${bytes} bytes are ${what}, left by a crash: the next writable open moves them to quarantine/`,
    },
  ];
}

function resumption(segment: SegmentScan, resumesAt: number | undefined): string {
  return resumesAt === undefined
    ? '; no valid record follows in the segment'
    : `; valid records resume at offset ${resumesAt} (position ${positionOf(segment.base, resumesAt)})`;
}

/** F-8: a segment's records end exactly where the next segment's begin. */
function continuityProblem(dir: string, segment: SegmentScan, nextBase: number): CheckProblem | undefined {
  const fileEnd = offsetAt(segment.base, segment.fileBytes);
  if (fileEnd === nextBase) return undefined;
  if (fileEnd > nextBase) {
    const position = positionOf(segment.base, nextBase);
    return error('continuity', segment.path, position, nextBase, `${fileEnd - nextBase} bytes lie past the next segment's base ${nextBase}`);
  }
  const whole = segment.headerProblem === undefined && segment.damages.length === 0 && !segment.endsInsideBatch;
  if (whole) {
    const missing = join(dir, segmentName(fileEnd));
    return error(
      'missing-segment',
      missing,
      0,
      fileEnd,
      `no segment holds offsets ${fileEnd} to ${nextBase}: ${segmentName(fileEnd)} is missing ` +
        `(or ${segmentName(segment.base)} was cut at a record boundary)`,
    );
  }
  return error(
    'continuity',
    segment.path,
    Math.max(segment.fileBytes, 0),
    fileEnd,
    `the file ends ${nextBase - fileEnd} bytes before the next segment's base ${nextBase}: it was truncated`,
  );
}

function deleteProblem(segment: SegmentScan, offset: number): CheckProblem {
  return {
    severity: 'warning',
    kind: 'delete',
    file: segment.path,
    position: positionOf(segment.base, offset),
    offset,
    message: 'the deletion of this record was interrupted (it is in the DELETES journal): the next writable open finishes it',
  };
}

function lockProblems(dir: string, lock: LockStatus): CheckProblem[] {
  if (lock.state !== 'stale') return [];
  const why = lock.malformed
    ? `does not name a process (${JSON.stringify(lock.holder)})`
    : `names process ${lock.holder ?? ''}, which no longer runs`;
  return [warning('lock', join(dir, lockFileName), `the lock ${why}: the next writer takes it over`)];
}

function temporaryProblem(dir: string, name: string): CheckProblem {
  return warning('temporary', join(dir, name), 'an interrupted segment creation: the next writable open removes it');
}

/** F-50, F-52: a view's state must be readable, must not be ahead of the log, and its `since` must be a record. */
export function viewProblems(views: readonly ViewState[], scan: LogScan): CheckProblem[] {
  const problems: CheckProblem[] = [];
  const rebuilds = 'the view rebuilds from the start of the log when it is next used';
  for (const view of views) {
    const file = view.file ?? view.dir;
    if (view.problem !== null) {
      problems.push(error('view', file, 0, null, `view ${view.name}: ${view.problem}; ${rebuilds}`));
      continue;
    }
    const since = view.since;
    if (since === null || since < 0) continue;
    if (since > scan.prefix.since) {
      problems.push(
        error('view', file, 0, since, `view ${view.name} holds records up to offset ${since}, past the log's last record ${scan.prefix.since}`),
      );
    } else if (recordStartsAt(scan, since) === false) {
      problems.push(error('view', file, 0, since, `view ${view.name} says it holds records up to offset ${since}, where no record starts`));
    }
  }
  return problems;
}

function error(kind: CheckProblemKind, file: string, position: number, offset: number | null, message: string): CheckProblem {
  return { severity: 'error', kind, file, position, offset, message };
}

function warning(kind: CheckProblemKind, file: string, message: string): CheckProblem {
  return { severity: 'warning', kind, file, position: 0, offset: null, message };
}

/** The journal's offsets, or the problem that it is too large to be one (F-97): `recover` quarantines it. */
function readJournalProblem(dir: string): number[] | CheckProblem {
  try {
    return readJournal(dir);
  } catch (error) {
    if (!isSluiceError(error, 'CORRUPT_LOG')) throw error;
    return { severity: 'error', kind: 'delete', file: error.file ?? dir, position: error.position ?? 0, offset: null, message: error.message };
  }
}

import type { Database, Key } from 'lmdb';
import { isSluiceError, SluiceError } from '../errors.js';
import { keyLayout } from './ordered-key.js';

/**
 * What the index and query views share about the entries and meta they keep in LMDB: meta keys, checks of what
 * is read back (a damaged store fails with `CORRUPT_VIEW`, never misreads), which entries point at records the
 * log no longer has, and the pass that drops those of trimmed records.
 */

/** Meta key: the layout of the entries' keys (`keyLayout`). */
export const layoutKey = 'layout';
/** Meta key: the `below` of the last prune that finished (`View.prune`), so a reopen does not scan again. */
export const prunedBelowKey = 'prunedBelow';
/** Entries looked at per step of a prune's pass, and removed in one transaction. */
const pruneScanEntries = 10_000;

/**
 * Whether a read of an index entry's record failed because the record is no longer in the log, so the entry is
 * to be skipped: deleted (`RECORD_DELETED`), below the log's first offset after a trim dropped its segment
 * (`OFFSET_OUT_OF_RANGE`: an entry never points past what the view has seen, and a view ahead of its log is
 * rebuilt before it answers), or dropped by a compaction, which the views do not hear of (`NOT_A_RECORD`: the
 * entry was made for a record that started there, and a filler covers it now, F-64).
 */
export function isRecordGone(error: unknown): boolean {
  return isSluiceError(error, 'RECORD_DELETED') || isSluiceError(error, 'OFFSET_OUT_OF_RANGE') || isSluiceError(error, 'NOT_A_RECORD');
}

/** Why the stored key layout (`keyLayout`) is not this code's, or `undefined` when it is. */
export function layoutProblem(layout: unknown): string | undefined {
  if (layout === keyLayout) return undefined;
  return `${layout === undefined ? 'no key layout' : `key layout ${JSON.stringify(layout)}`} on disk, ${keyLayout} in code`;
}

/** Validates `View.prune`'s argument: an offset (a programmer mistake otherwise). */
export function checkPruneBound(below: unknown): asserts below is number {
  if (typeof below !== 'number') throw new TypeError(`below must be a number, got ${typeof below}`);
  if (!Number.isSafeInteger(below) || below < 0) throw new RangeError(`below must be a non-negative safe integer, got ${below}`);
}

/**
 * The keys of the entries of `entries` (index key → offset) whose record lies below `below`, a step of
 * `pruneScanEntries` entries looked at a time (a step with none is not yielded). An index is ordered by its keys,
 * so the records a trim dropped from the front of the log have entries anywhere in it: finding them takes a pass
 * over every entry. Between steps the event loop turns (appends go on), and the caller removes what a step found
 * before the next one reads on after it.
 */
export async function* entriesBelow(entries: Database<number, Key>, below: number): AsyncGenerator<Key[]> {
  let after: Key | undefined;
  for (;;) {
    const range = after === undefined ? { limit: pruneScanEntries } : { start: after, exclusiveStart: true, limit: pruneScanEntries };
    const doomed: Key[] = [];
    let seen = 0;
    for (const { key, value } of entries.getRange(range)) {
      seen++;
      after = key;
      if (value < below) doomed.push(key);
    }
    if (doomed.length > 0) yield doomed;
    if (seen < pruneScanEntries) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Why a `since` read from a view's store cannot be one (a damaged file), or `undefined` when it can. */
export function storedSinceProblem(since: unknown): string | undefined {
  return Number.isSafeInteger(since) && (since as number) >= -1 ? undefined : `the stored since ${String(since)} is not an offset`;
}

/** An offset read from an index entry, checked: a damaged store must fail with a code, never misread. */
export function checkStoredOffset(offset: unknown, file: string | undefined): number {
  if (Number.isSafeInteger(offset) && (offset as number) >= 0) return offset as number;
  throw new SluiceError('CORRUPT_VIEW', `an index entry holds ${String(offset)}, which is not an offset: rebuild the view`, {
    file: file ?? 'index.mdb',
  });
}

/**
 * Runs a read of a view's LMDB store: LMDB's own errors (a damaged page: `MDB_CORRUPTED`, `MDB_PAGE_NOTFOUND`, …)
 * become `CORRUPT_VIEW` naming the store, with LMDB's error as the cause.
 */
export function storeRead<R>(file: string, read: () => R): R {
  try {
    return read();
  } catch (error) {
    if (isSluiceError(error)) throw error;
    throw new SluiceError('CORRUPT_VIEW', `${file} cannot be read (${(error as Error).message}): rebuild the view`, { cause: error, file });
  }
}

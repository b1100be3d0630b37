/**
 * The one error class of Sluice. Callers test `error.code`, never `instanceof` or the message: codes are stable,
 * messages are for people. Programmer mistakes (a wrong argument type, an out-of-range number) are thrown as
 * `TypeError` / `RangeError` instead, because no caller should handle them at run time.
 */

/** Every code Sluice can fail with. Adding a code is a minor change; renaming or removing one is a major one. */
export type ErrorCode =
  /** The log (or database) was closed, or is closing: the call cannot proceed. */
  | 'LOG_CLOSED'
  /** The offset is before the first available record or at or past the end of the log. */
  | 'OFFSET_OUT_OF_RANGE'
  /** No record starts at the offset (it points into the middle of a record, or at damaged framing). */
  | 'NOT_A_RECORD'
  /** A record's framing or checksum is wrong: `file` and `position` say where. Never returned as data. */
  | 'CORRUPT_RECORD'
  /** A segment file's header is damaged, from a future format version, or disagrees with the file name. */
  | 'CORRUPT_SEGMENT'
  /**
   * A view's stored state is damaged in a way found only when it is read (an index entry that holds no offset,
   * or whose record does not have its key; a page LMDB reports damaged): `file` names the store. Rebuild the
   * view (`db.rebuild(name)`); a store that does not open is rebuilt by itself.
   */
  | 'CORRUPT_VIEW'
  /** The log's files contradict each other (a gap between segments, a damaged record before the tail). */
  | 'CORRUPT_LOG'
  /** The directory exists, holds files, and is not a Sluice log: nothing in it was modified. */
  | 'NOT_A_LOG'
  /** The directory does not exist and the log was opened read-only (or with `create: false`). */
  | 'LOG_NOT_FOUND'
  /** Another writer (in this process or another) holds the directory lock. */
  | 'LOCKED'
  /** A write was attempted on a log opened with `readonly: true`. */
  | 'READ_ONLY'
  /**
   * A write or fsync failed (disk full, I/O error). The log was left as it was before the failed write, and the
   * failure is sticky: every later write fails with this code until the log is reopened.
   */
  | 'WRITE_FAILED'
  /** A read from disk failed with an I/O error. */
  | 'READ_FAILED'
  /** The call was aborted through its `signal`; `cause` is the signal's reason. */
  | 'ABORTED'
  /**
   * A read-only log found that its writer cut away records it had already read: batches written, read here, then
   * truncated away because a write or sync failed before they were acknowledged (in `disk` durability, every batch
   * written since the last sync; in the others, those of a write that failed part-way). Every read of that log
   * fails with this code: reopen it to read the log as it now is.
   */
  | 'LOG_REWOUND'
  /** A record is intact on disk but the codec could not decode it (a codec other than the one that wrote it?). */
  | 'DECODE_FAILED'
  /** A view's code threw: its reads fail with this code until it is rebuilt. `cause` is what it threw. */
  | 'VIEW_FAILED'
  /** The view (or its database) closed while the read waited, or was used after closing. */
  | 'VIEW_CLOSED'
  /** Bad input that is data rather than a programming mistake (for example a line of a CLI input stream). */
  | 'INVALID_INPUT'
  /** The record at the offset was deleted: its bytes are gone, its offset stays taken. Streams skip it. */
  | 'RECORD_DELETED'
  /**
   * The log cannot grow: the next record would end past the largest offset its format can store (a
   * flumelog-offset file with 4-byte offsets stops at 4 GiB). Nothing was written.
   */
  | 'LOG_FULL'
  /**
   * The servers behind a networked log (JetStream) cannot be reached, or cannot store (no quorum, no JetStream)
   * within the log's retry time. For an append the outcome is unknown: its records may or may not be in the log
   * (they are never in it twice, nor out of order), and the failure is sticky like `WRITE_FAILED`: reopen the log
   * to go on. Reads that fail with it can simply be retried.
   */
  | 'UNAVAILABLE'
  /**
   * The servers behind a networked log (JetStream) refused this client: no credentials where they require some,
   * wrong ones, or a TLS certificate that one side does not trust. Retrying cannot help; the message never holds
   * the secret.
   */
  | 'UNAUTHORIZED'
  /**
   * A message in a JetStream stream was not written by Sluice (a subject outside the log's, or no Sluice headers):
   * `offset` says where. It is neither skipped nor decoded: streams end with this error, `get` rejects.
   */
  | 'FOREIGN_MESSAGE'
  /**
   * The log is encrypted (FORMAT.md F-74) and was opened without a key, or a segment's records were encrypted with
   * a key id that is not among the keys supplied: `file` names the segment. Nothing is decrypted or guessed.
   */
  | 'KEY_REQUIRED'
  /**
   * A key was supplied under the id a segment names, but it is not the key that segment was written with (its key
   * check value differs, F-75): `file` names the segment. Detected when the segment is first used, never per record.
   */
  | 'WRONG_KEY'
  /**
   * The log's security options (tamper-evident chain, encryption) are fixed when it is created and recorded in
   * every segment header (F-70): opening it with options that contradict them (a key for a plain log, another
   * chain algorithm) fails with this code, as does a record or segment whose security flags differ from the log's.
   */
  | 'SECURITY_MISMATCH';

export interface SluiceErrorOptions {
  readonly cause?: unknown;
  /** The file the problem was found in, when there is one. */
  readonly file?: string;
  /** The byte position in `file` (not the log offset) where the problem was found. */
  readonly position?: number;
  /** The log offset concerned, when there is one. */
  readonly offset?: number;
}

export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly file: string | undefined;
  readonly position: number | undefined;
  readonly offset: number | undefined;

  constructor(code: ErrorCode, message: string, options: SluiceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SluiceError';
    this.code = code;
    this.file = options.file;
    this.position = options.position;
    this.offset = options.offset;
  }
}

/** True when `error` is a SluiceError with the given code (or any code, when none is given). */
export function isSluiceError(error: unknown, code?: ErrorCode): error is SluiceError {
  return error instanceof SluiceError && (code === undefined || error.code === code);
}

/** Rejections and rethrows always carry an Error, even when something threw a non-Error value. */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A programmer mistake (`TypeError`): a `signal` option that is not an AbortSignal, which no check would heed. */
export function checkSignal(signal: unknown): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal');
}

/** Throws `ABORTED` (the signal's reason as cause) when `signal` has aborted; `what` names the call. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw new SluiceError('ABORTED', `${what} was aborted`, { cause: signal.reason });
}

import { asError, isSluiceError, SluiceError, type ErrorCode } from '../errors.js';
import { rethrowAsync } from './pull.js';

/** The code flumelog-offset gives a deleted record's error; flumeview-level tests it to drop stale entries. */
export const flumeDeletedCode = 'flumelog:deleted';

/**
 * The one error the flume layer makes itself: reading a deleted record. Flume modules test
 * `err.code === 'flumelog:deleted'`, so that is its `code`; the Sluice code stays in `sluiceCode`, and the
 * `SluiceError` it replaces is its `cause`. Every other failure is handed out as the `SluiceError` it is.
 */
export class FlumeDeletedError extends Error {
  readonly code = flumeDeletedCode;
  readonly sluiceCode: ErrorCode = 'RECORD_DELETED';
  readonly offset: number | undefined;

  constructor(cause: SluiceError) {
    super(cause.message, { cause });
    this.name = 'FlumeDeletedError';
    this.offset = cause.offset;
  }
}

/** What a flume caller receives for a Sluice failure. */
export function toFlumeError(error: unknown): Error {
  if (isSluiceError(error, 'RECORD_DELETED')) return new FlumeDeletedError(error);
  return asError(error);
}

/** The error of a call on a closed database or log (flumedb throws; so do we, with a code). */
export function closedError(what: string): SluiceError {
  return new SluiceError('LOG_CLOSED', `cannot call ${what}: the flume database is closed`);
}

export type NodeCallback<T> = (error: Error | null, value?: T) => void;

/** Checks that a callback was given: a programmer mistake otherwise. */
export function checkCallback(cb: unknown, what: string): asserts cb is (...args: never[]) => unknown {
  if (typeof cb !== 'function') throw new TypeError(`${what} needs a callback function`);
}

/**
 * Calls `cb` back with the outcome of `promise`. A callback that throws must not turn into a rejection nobody
 * handles, nor be called twice: its error is rethrown on its own, as a throw in a callback would be.
 */
export function callbackify<T, U = T>(
  promise: Promise<T>,
  cb: NodeCallback<U>,
  map: (value: T) => U = (value) => value as unknown as U,
): void {
  promise.then(
    (value) => invoke(cb, null, map(value)),
    (error: unknown) => invoke(cb, toFlumeError(error)),
  );
}

/** Calls `cb`, rethrowing what it throws asynchronously (so a promise chain never swallows it). */
export function invoke<T>(cb: NodeCallback<T>, error: Error | null, value?: T): void {
  try {
    if (error === null) cb(null, value);
    else cb(error);
  } catch (thrown) {
    rethrowAsync(thrown);
  }
}

import { JetStreamApiError, JetStreamApiCodes } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';
import { SluiceError } from '../../errors.js';

/** The server refused a publish because the stream's last message id was not the one expected. */
export const wrongLastMsgIdCode = 10070;

/**
 * What a failed publish says about its message:
 * - `unknown`: it may or may not be stored (a timeout, no responders during an election, a lost connection);
 *   retrying with the same message id is safe.
 * - `rejected`: the server checked an expectation and did not store it (wrong last sequence or message id).
 * - `failed`: the server refused it for good (a stream limit, a sealed stream): retrying cannot help.
 */
export type PublishOutcome = 'unknown' | 'rejected' | 'failed';

export function publishOutcomeOf(error: unknown): PublishOutcome {
  if (error instanceof JetStreamApiError) {
    if (error.code === JetStreamApiCodes.StreamWrongLastSequence || error.code === wrongLastMsgIdCode) return 'rejected';
    // 503: JetStream is temporarily unavailable (no leader, no quorum).
    return error.status >= 500 ? 'unknown' : 'failed';
  }
  return isTransient(error) ? 'unknown' : 'failed';
}

/** True for the errors of a server or network that may answer again later. */
export function isTransient(error: unknown): boolean {
  return (
    error instanceof errors.TimeoutError ||
    error instanceof errors.NoRespondersError ||
    error instanceof errors.RequestError ||
    // Not a closed or draining connection: the log's own connection reconnects for ever, so closed means closing.
    error instanceof errors.ConnectionError ||
    (error instanceof JetStreamApiError && error.status >= 500) ||
    // The client's "jetstream is not enabled" (no server answered: an election, a lost quorum) is not exported;
    // it wraps the request error that says so.
    (error instanceof Error && error.name === 'JetStreamNotEnabled' && isTransient(error.cause))
  );
}

export function isStreamNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound;
}

/** A read or an administrative request that failed: `UNAVAILABLE` for a transient cause, as is otherwise. */
export function readFailure(what: string, error: unknown): Error {
  if (error instanceof SluiceError) return error;
  if (isTransient(error)) {
    return new SluiceError('UNAVAILABLE', `${what}: the NATS servers did not answer (${describe(error)})`, { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Pause between attempts of a request that is safe to repeat. */
const retryPauseMs = 250;

/**
 * Runs `request` again while it fails with a transient error (an election in progress, a server restarting) and
 * `retryMs` have not passed since the first attempt, unless `stopped` (the log is closing). Only for requests that
 * change nothing (reads).
 */
export async function retrying<R>(retryMs: number, request: () => Promise<R>, stopped = () => false): Promise<R> {
  const deadline = Date.now() + retryMs;
  for (;;) {
    try {
      return await request();
    } catch (error) {
      if (!isTransient(error) || stopped() || Date.now() + retryPauseMs > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, retryPauseMs));
    }
  }
}

import { SluiceError } from '../errors.js';
import { UsageError } from './args.js';

/** Exit statuses of the `sluice` command. */
export const exitStatus = { ok: 0, failed: 1, usage: 2 } as const;

/** The stable code printed for an error: the SluiceError code, or a name for the other kinds. */
export function errorCode(error: unknown): string {
  if (error instanceof SluiceError) return error.code;
  // The log throws these for arguments it rejects; from the command line they are the user's mistake.
  if (error instanceof TypeError || error instanceof RangeError) return 'INVALID_ARGUMENT';
  const systemCode = (error as NodeJS.ErrnoException | null)?.code;
  return typeof systemCode === 'string' ? systemCode : 'INTERNAL_ERROR';
}

/**
 * Prints `error` to stderr as `sluice: <CODE>: <message>` (a usage error as its message followed by the usage)
 * and returns the exit status for it: 2 for usage errors, 1 for everything else.
 */
export function reportError(error: unknown, stderr: NodeJS.WritableStream = process.stderr): number {
  if (error instanceof UsageError) {
    stderr.write(`sluice: ${error.message}\n\n${error.usage}`);
    return exitStatus.usage;
  }
  const message = error instanceof Error ? error.message : String(error);
  stderr.write(`sluice: ${errorCode(error)}: ${message}\n`);
  return exitStatus.failed;
}

import type { ViewProgress } from '../../views/runner.js';
import { ProgressBar } from '../progress-bar.js';

/**
 * Runs a long operation (check, recover, backup, restore) with a progress bar on stderr and a signal that SIGINT
 * or SIGTERM aborts, so that an interrupted operation stops where it can do so cleanly (a backup removes what it
 * wrote) instead of dying half-way.
 */
export async function runInterruptible<R>(
  operation: (context: { signal: AbortSignal; onProgress: (progress: ViewProgress) => void }) => Promise<R>,
): Promise<R> {
  const stopping = new AbortController();
  const stop = (): void => stopping.abort(new Error('interrupted'));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const bar = new ProgressBar(process.stderr);
  try {
    return await operation({ signal: stopping.signal, onProgress: (progress) => bar.update(progress) });
  } finally {
    bar.done();
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

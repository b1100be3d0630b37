import { SluiceError } from '../errors.js';

interface Waiter {
  target: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * Reads waiting for a view to reach an offset, kept sorted by that offset so they are released in offset order
 * (flumedb's waiter queue lost its order; this one cannot: insertion keeps it sorted, release takes a prefix).
 */
export class Waiters {
  #waiting: Waiter[] = [];

  /** Resolves once `release(since)` is called with `since >= target`; `signal` aborts with `ABORTED`. */
  wait(target: number, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted === true) {
      return Promise.reject(new SluiceError('ABORTED', 'the read was aborted', { cause: signal.reason }));
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiting = this.#waiting.filter((waiter) => waiter !== entry);
        reject(new SluiceError('ABORTED', 'the read was aborted', { cause: signal?.reason }));
      };
      const entry: Waiter = {
        target,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let index = this.#waiting.length;
      while (index > 0 && (this.#waiting[index - 1] as Waiter).target > target) index--;
      this.#waiting.splice(index, 0, entry);
    });
  }

  /** Resolves, in offset order, every waiter whose target is at or before `since`. */
  release(since: number): void {
    let count = 0;
    while (count < this.#waiting.length && (this.#waiting[count] as Waiter).target <= since) count++;
    if (count === 0) return;
    const released = this.#waiting.slice(0, count);
    this.#waiting = this.#waiting.slice(count);
    for (const waiter of released) waiter.resolve();
  }

  /**
   * Moves the waiters for `from` to wait for `to` (< `from`) instead, keeping the order: when the records
   * between were deleted, the one before them is as far as a view can get.
   */
  retarget(from: number, to: number): void {
    for (const waiter of this.#waiting) if (waiter.target === from) waiter.target = to;
    this.#waiting.sort((a, b) => a.target - b.target);
  }

  rejectAll(error: Error): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const waiter of waiting) waiter.reject(error);
  }
}

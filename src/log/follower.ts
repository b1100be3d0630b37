import { watch, type FSWatcher } from 'node:fs';
import { followIntervalMs } from '../limits.js';

/**
 * How a read-only log notices another process's appends while a live stream waits: a file-system watch on the
 * log's file or directory, and a slow poll in case a watch event is missed (or watching is not supported). The
 * poll's timer holds the process open only while a stream waits, as an in-flight read would.
 */
export class Follower {
  readonly #path: string;
  readonly #refresh: () => void;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(path: string, refresh: () => void) {
    this.#path = path;
    this.#refresh = refresh;
  }

  /** A stream started waiting: watch (once) and keep the process alive. */
  start(): void {
    if (this.#timer === undefined) {
      try {
        this.#watcher = watch(this.#path, { persistent: false }, () => this.#refresh());
        this.#watcher.on('error', () => this.#watcher?.close());
      } catch {
        // Watching is an optimisation; the timer still finds new records.
      }
      this.#timer = setInterval(() => this.#refresh(), followIntervalMs);
    }
    this.#timer.ref();
  }

  /** No stream waits any more: keep looking, but let the process exit. */
  idle(): void {
    this.#timer?.unref();
  }

  /** Stops watching for good (the log closes). Idempotent. */
  close(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

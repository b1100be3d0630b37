/** How often a long operation reports progress at most. */
const reportIntervalMs = 100;

/**
 * How far a view, or a long operation (import, export, check, compaction…), is, for progress bars: `view` names
 * it; `since` is the last offset done and `target` the last one to do. Offsets are bytes, so
 * `bytesDone / bytesTotal` is the fraction done.
 */
export interface Progress {
  readonly view: string;
  readonly since: number;
  /** The offset it is heading for (a view: the log's `since`). */
  readonly target: number;
  readonly recordsDone: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly recordsPerSecond: number;
  /** Estimated time to reach `target` at the current rate; `0` once there. */
  readonly etaMs: number;
}

/** Reports a long operation's progress to a listener, at most every 100 ms, with its rate and time left. */
export class ProgressMeter {
  readonly #name: string;
  readonly #listener: ((progress: Progress) => void) | undefined;
  readonly #startMs = performance.now();
  #lastReportMs = -Infinity;

  constructor(name: string, listener: ((progress: Progress) => void) | undefined) {
    if (listener !== undefined && typeof listener !== 'function') throw new TypeError('onProgress must be a function');
    this.#name = name;
    this.#listener = listener;
  }

  /** Reports at most every 100 ms, and always when `final`. */
  update(since: number, target: number, recordsDone: number, bytesDone: number, bytesTotal: number, final = false): void {
    if (this.#listener === undefined) return;
    const nowMs = performance.now();
    if (!final && nowMs - this.#lastReportMs < reportIntervalMs) return;
    this.#lastReportMs = nowMs;
    const seconds = Math.max((nowMs - this.#startMs) / 1000, 1e-3);
    const bytesPerSecond = bytesDone / seconds;
    this.#listener({
      view: this.#name,
      since,
      target,
      recordsDone,
      bytesDone,
      bytesTotal,
      recordsPerSecond: Math.round(recordsDone / seconds),
      etaMs: final || bytesPerSecond === 0 ? 0 : Math.round(((bytesTotal - bytesDone) / bytesPerSecond) * 1000),
    });
  }
}

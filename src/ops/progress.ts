import type { ViewProgress } from '../views/runner.js';

/** How often a long operation reports progress at most. */
const reportIntervalMs = 100;

/**
 * Progress of a long operation (import, export) in the shape views report theirs, so one progress bar draws
 * both: `since` is the last offset done, `target` the last offset to do, bytes measure the way there.
 */
export class ProgressMeter {
  readonly #name: string;
  readonly #listener: ((progress: ViewProgress) => void) | undefined;
  readonly #startMs = performance.now();
  #lastReportMs = -Infinity;

  constructor(name: string, listener: ((progress: ViewProgress) => void) | undefined) {
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

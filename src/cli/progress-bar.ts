import type { ViewProgress } from '../views/runner.js';

const barWidth = 30;
/** Without a terminal, a line every this often rather than a redrawn bar. */
const plainIntervalMs = 1000;

/**
 * Draws view progress on a stream: one redrawn line per view on a terminal, or a plain line now and then
 * otherwise (so logs stay readable).
 */
export class ProgressBar {
  readonly #stream: NodeJS.WriteStream;
  readonly #terminal: boolean;
  #lastPlainMs = 0;
  #drawn = false;

  constructor(stream: NodeJS.WriteStream) {
    this.#stream = stream;
    this.#terminal = stream.isTTY === true;
  }

  update(progress: ViewProgress): void {
    const line = describe(progress);
    if (this.#terminal) {
      this.#stream.write(`\r${line}\x1b[K`);
      this.#drawn = true;
      return;
    }
    const nowMs = Date.now();
    if (nowMs - this.#lastPlainMs < plainIntervalMs && progress.since < progress.target) return;
    this.#lastPlainMs = nowMs;
    this.#stream.write(`${line}\n`);
  }

  /** Ends the redrawn line. */
  done(): void {
    if (this.#drawn) this.#stream.write('\n');
    this.#drawn = false;
  }
}

/** `name [#######-------]  45.2%  123,456 records  51,234/s  eta 3s` */
export function describe(progress: ViewProgress): string {
  const fraction = progress.bytesTotal <= 0 ? 1 : Math.min(1, progress.bytesDone / progress.bytesTotal);
  const filled = Math.round(fraction * barWidth);
  const bar = `${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}`;
  const percent = `${(fraction * 100).toFixed(1)}%`.padStart(6);
  const records = progress.recordsDone.toLocaleString('en-US');
  const rate = progress.recordsPerSecond.toLocaleString('en-US');
  const eta = progress.since >= progress.target ? 'done' : `eta ${Math.ceil(progress.etaMs / 1000)}s`;
  return `${progress.view} [${bar}] ${percent}  ${records} records  ${rate}/s  ${eta}`;
}

import type { Log } from '../log/log.js';

/**
 * Appends values without waiting for each one (appends issued in one turn of the event loop become one write),
 * hands their offsets to `onOffset` in call order, and keeps at most `inFlightMax` appends unreported so a fast
 * producer cannot queue unbounded work. Meant for one producer that awaits each `add`. The first failure stops
 * everything: later `add` calls and `settled` rethrow it.
 */
export class PipelinedAppender<T> {
  readonly #log: Log<T>;
  readonly #onOffset: (offset: number) => Promise<void> | undefined;
  readonly #inFlightMax: number;
  #inFlight = 0;
  #tail: Promise<void> = Promise.resolve();
  #failure: { readonly error: unknown } | undefined;
  #wakeProducer: (() => void) | undefined;

  constructor(log: Log<T>, onOffset: (offset: number) => Promise<void> | undefined, inFlightMax: number) {
    this.#log = log;
    this.#onOffset = onOffset;
    this.#inFlightMax = inFlightMax;
  }

  /** Starts appending `value`; waits first while `inFlightMax` appends are unreported. */
  async add(value: T): Promise<void> {
    this.#throwIfFailed();
    while (this.#inFlight >= this.#inFlightMax) {
      await new Promise<void>((resolve) => {
        this.#wakeProducer = resolve;
      });
      this.#throwIfFailed();
    }
    // As a batch of one: `append` takes a bare array for a batch, and a JSON line may well hold an array.
    const appended = this.#log.append([value]).then(firstOffset);
    // Rejections are handled where the tail reaches this append; this stops Node calling them unhandled first.
    appended.catch(() => {});
    this.#inFlight++;
    this.#tail = this.#tail.then(() => this.#report(appended));
    this.#tail.catch((error: unknown) => this.#fail(error));
  }

  /** Resolves once every offset so far has been reported; rejects with the first failure. */
  settled(): Promise<void> {
    return this.#tail;
  }

  async #report(appended: Promise<number>): Promise<void> {
    const offset = await appended;
    await this.#onOffset(offset);
    this.#inFlight--;
    this.#wake();
  }

  #fail(error: unknown): void {
    this.#failure ??= { error };
    this.#wake();
  }

  #wake(): void {
    const wake = this.#wakeProducer;
    this.#wakeProducer = undefined;
    wake?.();
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }
}

function firstOffset(offsets: number[]): number {
  return offsets[0] as number;
}

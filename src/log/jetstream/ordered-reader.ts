import {
  DeliverPolicy,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JsMsg,
  type StreamState,
} from '@nats-io/jetstream';
import { isTransient, readFailure } from './nats-errors.js';

/** Messages a reader asks the server for at once (the client asks for more as they are taken). */
const readAheadMessages = 512;
/** How long one pull request waits on the server; see `#deliver`. */
const pullExpiresMs = 4000;
/** The pause before a reader whose server went away opens its consumer again. */
const reopenPauseMs = 250;
/** How often a reader checks that its consumer still delivers; see `#watch`. */
const stallCheckMs = pullExpiresMs;
/**
 * The pauses after which a reader waiting for a message its caller expects asks whether any is stored at all
 * (`#probeAbsence`); after the last one the watch goes on asking every `stallCheckMs`.
 */
const absenceProbePausesMs = [200, 400, 800, 1600];

/**
 * The stream's state as its leader says now; with `deleted` listing the sequences deleted between its first and
 * last when `deletedDetails` is asked for.
 */
export type StreamStateReader = (deletedDetails: boolean) => Promise<StreamState>;

/**
 * What `next` returns when the stream's state shows that no message is stored after the last one delivered, up to
 * and including `absentThrough`: they were deleted or purged behind the log's back, so waiting for them would be
 * waiting for ever. Later messages are still delivered as they come.
 */
export interface Absence {
  readonly absentThrough: number;
}

export function isAbsence(item: JsMsg | Absence): item is Absence {
  return 'absentThrough' in item;
}

/**
 * The first sequence after `after` that `state` says may hold a message: at or past its first sequence, not
 * deleted, and at most its last sequence; `undefined` when there is none. Without `state.deleted` (not asked for)
 * deletions in the middle are not known, and only the first and last sequences bound the answer.
 *
 * A server whose state lags behind knows fewer deletions, an earlier first sequence and an earlier last one, so
 * its answer errs towards "may hold a message": never does it call absent a message the stream holds.
 */
export function firstStoredAfter(state: StreamState, after: number): number | undefined {
  let sequence = Math.max(after + 1, state.first_seq);
  const deleted = state.deleted === undefined || state.deleted.length === 0 ? undefined : new Set(state.deleted);
  while (deleted?.has(sequence) === true && sequence <= state.last_seq) sequence++;
  return sequence <= state.last_seq ? sequence : undefined;
}

/** A consumer that delivers nothing while the stream holds messages it has not delivered: opened again. */
class ConsumerStalled extends Error {}

/**
 * The messages of a stream from one sequence on, in order, through an ordered consumer: an ephemeral consumer
 * the client recreates after a gap or a lost server, so nothing is skipped or delivered twice. A pump moves
 * delivered messages into a buffer of at most `readAheadMessages`; the client asks the server for more only as
 * its own queue is drained, so a slow reader holds back delivery. Opened on the first `next`; `close` deletes
 * the consumer on the server. When the consumer cannot be created or fails (an election, a lost server), the
 * reader opens a new one after the last message delivered, for up to `retryMs` without progress.
 *
 * The client's ordered consumer only notices a lost server through that server: when the server holding the
 * consumer dies (the stream's leader, often) while the connection stays up on another one, the client asks the
 * dead consumer for its state until that server returns, and delivers nothing meanwhile. So the reader watches
 * its consumer (`#watch`): delivering nothing for two checks in a row while the stream holds messages after the
 * last one delivered, it is stalled and opened again (on a server that runs). A stalled consumer does not count
 * as a failure: the servers answer, so it is reopened as long as the reader is open.
 *
 * The same check tells a reader that is simply caught up from one waiting for messages that were deleted or
 * purged after its last delivery (the stream's last sequence stays where it was): then `next` returns an
 * `Absence`, once the buffer is empty, so that a cursor waiting for a message it knew of can move on.
 */
export class OrderedReader {
  readonly #js: JetStreamClient;
  readonly #stream: string;
  readonly #retryMs: number;
  /** The sequence of the last message delivered (the one before the start, at first). */
  #delivered: number;
  /** `#delivered` when the last attempt to deliver began: progress since resets the clock for giving up. */
  #last: number;
  readonly #headersOnly: boolean;
  #opened = false;
  #consumer: Consumer | undefined;
  #messages: ConsumerMessages | undefined;
  #buffer: JsMsg[] = [];
  #head = 0;
  /** A `next` waiting for a message, or the pump waiting for room. */
  #wakeReader: (() => void) | undefined;
  #wakePump: (() => void) | undefined;
  #error: Error | undefined;
  #ended = false;
  #closed = false;
  /** The highest sequence the stream's state showed absent after a delivery, and the highest `next` reported. */
  #absentThrough = 0;
  #absenceReported = 0;
  #probing = false;

  readonly #streamState: StreamStateReader | undefined;

  constructor(
    js: JetStreamClient,
    stream: string,
    startSequence: number,
    retryMs: number,
    headersOnly = false,
    streamState?: StreamStateReader,
  ) {
    this.#js = js;
    this.#streamState = streamState;
    this.#stream = stream;
    this.#delivered = Math.max(1, startSequence) - 1;
    this.#last = this.#delivered;
    this.#retryMs = retryMs;
    this.#headersOnly = headersOnly;
  }

  /** Messages delivered and not yet taken: this many `next` calls resolve without waiting for the server. */
  get buffered(): number {
    return this.#buffer.length - this.#head;
  }

  /**
   * The next message, or an `Absence` of the messages after the last one delivered; waits for either.
   * `undefined` once the reader is closed. `expected`: the caller knows a message to exist after the last one
   * delivered, so the reader soon asks the stream whether it still does, rather than only at its watch's checks.
   */
  async next(expected = false): Promise<JsMsg | Absence | undefined> {
    if (!this.#opened) {
      this.#opened = true;
      void this.#run();
    }
    for (;;) {
      if (this.#closed) return undefined;
      if (this.#head < this.#buffer.length) return this.#take();
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return undefined;
      if (this.#absentThrough > this.#absenceReported) {
        this.#absenceReported = this.#absentThrough;
        return { absentThrough: this.#absentThrough };
      }
      if (expected) void this.#probeAbsence();
      await new Promise<void>((resolve) => (this.#wakeReader = resolve));
    }
  }

  #take(): JsMsg {
    const message = this.#buffer[this.#head++] as JsMsg;
    if (this.#head === this.#buffer.length) {
      this.#buffer = [];
      this.#head = 0;
    }
    if (this.#wakePump !== undefined && this.buffered <= readAheadMessages / 2) this.#wake('pump');
    return message;
  }

  #wake(which: 'reader' | 'pump'): void {
    const wake = which === 'reader' ? this.#wakeReader : this.#wakePump;
    if (which === 'reader') this.#wakeReader = undefined;
    else this.#wakePump = undefined;
    wake?.();
  }

  async #run(): Promise<void> {
    let failingSinceMs: number | undefined;
    try {
      for (;;) {
        try {
          await this.#deliver();
          return;
        } catch (error) {
          this.#release();
          if (error instanceof ConsumerStalled && !this.#closed) {
            // Its consumer was created: the servers answer, so the clock for giving up starts again.
            failingSinceMs = undefined;
            this.#last = this.#delivered;
            await new Promise((resolve) => setTimeout(resolve, reopenPauseMs));
            continue;
          }
          // An election or a lost server: start again after the last message delivered, for a while.
          failingSinceMs ??= Date.now();
          if (this.#closed || !isTransient(error) || Date.now() - failingSinceMs > this.#retryMs) throw error;
          await new Promise((resolve) => setTimeout(resolve, reopenPauseMs));
          if (this.#delivered > this.#last) failingSinceMs = undefined;
          this.#last = this.#delivered;
        }
      }
    } catch (error) {
      this.#error = readFailure(`reading stream ${this.#stream} from sequence ${this.#delivered + 1}`, error);
    } finally {
      this.#ended = true;
      this.#release();
      this.#wake('reader');
    }
  }

  /** Delivers messages from after the last one delivered until the reader closes. */
  async #deliver(): Promise<void> {
    const consumer = await this.#js.consumers.get(this.#stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.#delivered + 1,
      headers_only: this.#headersOnly,
    });
    this.#consumer = consumer;
    if (this.#closed) return;
    // A short expiry makes the client notice within seconds that the server holding its consumer died (it
    // expects heartbeats at half the expiry), and recreate the consumer elsewhere.
    const messages = await consumer.consume({ max_messages: readAheadMessages, expires: pullExpiresMs });
    this.#messages = messages;
    if (this.#closed) return;
    const watch = this.#watch(messages);
    try {
      for await (const message of messages) {
        if (this.#closed) return;
        this.#delivered = message.seq;
        this.#buffer.push(message);
        this.#wake('reader');
        if (this.buffered >= readAheadMessages) await new Promise<void>((resolve) => (this.#wakePump = resolve));
      }
    } finally {
      clearInterval(watch);
    }
    // Delivery ended without `close` (the client stopped the consumer): open a new one, never end quietly.
    if (!this.#closed) throw new ConsumerStalled(`the consumer of stream ${this.#stream} stopped`);
  }

  /**
   * Every `stallCheckMs` (an unreferenced timer), while no message was delivered since the last check and none
   * waits for room, asks the stream's state whether a message is stored after the last one delivered. None: the
   * reader is caught up, and the sequences up to the stream's last are absent (`next` says so when they had been
   * expected). One, at both this check and the previous one → stops `messages` with `ConsumerStalled`. A failed
   * request (an election) just waits for the next check.
   */
  #watch(messages: ConsumerMessages): NodeJS.Timeout {
    let delivered = this.#delivered;
    let behind = false;
    let asking = false;
    const timer = setInterval(() => {
      if (this.#streamState === undefined || asking || this.#closed) return;
      const idle = this.#delivered === delivered && this.#wakePump === undefined;
      delivered = this.#delivered;
      if (!idle) {
        behind = false;
        return;
      }
      asking = true;
      this.#storedAfter(Math.max(delivered, this.#absentThrough)).then(
        ({ stored, last }) => {
          asking = false;
          if (this.#closed) return;
          if (this.#delivered !== delivered) {
            behind = false;
            return;
          }
          if (stored === undefined) {
            behind = false;
            if (last > this.#absentThrough && last > delivered) {
              this.#absentThrough = last;
              this.#wake('reader');
            }
            return;
          }
          if (behind) messages.stop(new ConsumerStalled(`the consumer of stream ${this.#stream} delivers nothing`));
          behind = true;
        },
        () => {
          asking = false;
        },
      );
    }, stallCheckMs);
    timer.unref();
    return timer;
  }

  /** While a `next` that expects a message waits, asks after each of `absenceProbePausesMs` whether one is stored. */
  async #probeAbsence(): Promise<void> {
    if (this.#probing || this.#streamState === undefined) return;
    this.#probing = true;
    try {
      for (const pauseMs of absenceProbePausesMs) {
        await new Promise((resolve) => setTimeout(resolve, pauseMs).unref());
        if (this.#closed || this.#wakeReader === undefined) return;
        const delivered = this.#delivered;
        let answer: { stored: number | undefined; last: number };
        try {
          answer = await this.#storedAfter(Math.max(delivered, this.#absentThrough));
        } catch {
          continue; // an election: ask again after the next pause
        }
        const { stored, last } = answer;
        if (this.#closed || this.#delivered !== delivered) continue;
        if (stored === undefined && last > this.#absentThrough && last > delivered) {
          this.#absentThrough = last;
          this.#wake('reader');
          return;
        }
      }
    } finally {
      this.#probing = false;
    }
  }

  /**
   * The first sequence after `after` the stream may hold a message at, and its last sequence. The deleted
   * sequences are asked for only when some exist and the first and last sequences alone leave a candidate.
   * Callers ask after what is known absent too (a deletion is for good), so an idle reader past the stream's
   * deleted last messages needs no list of deleted sequences at every check.
   */
  async #storedAfter(after: number): Promise<{ stored: number | undefined; last: number }> {
    const read = this.#streamState as StreamStateReader;
    let state = await read(false);
    let stored = firstStoredAfter(state, after);
    if (stored !== undefined && state.num_deleted > 0) {
      state = await read(true);
      stored = firstStoredAfter(state, after);
    }
    return { stored, last: state.last_seq };
  }

  #release(): void {
    this.#messages?.stop();
    this.#messages = undefined;
    // The server would drop an idle ephemeral consumer on its own, minutes later: tidy up now.
    this.#consumer?.delete().catch(() => undefined);
    this.#consumer = undefined;
  }

  /** Stops delivery (a waiting `next` resolves to `undefined`) and deletes the consumer. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffer = [];
    this.#head = 0;
    this.#release();
    this.#wake('pump');
    this.#wake('reader');
  }
}

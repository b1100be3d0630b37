import { DeliverPolicy, type Consumer, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import { isTransient, readFailure } from './nats-errors.js';

/** Messages a reader asks the server for at once (the client asks for more as they are taken). */
const readAheadMessages = 512;
/** How long one pull request waits on the server; see `#deliver`. */
const pullExpiresMs = 4000;
/** The pause before a reader whose server went away opens its consumer again. */
const reopenPauseMs = 250;
/** How often a reader checks that its consumer still delivers; see `#watch`. */
const stallCheckMs = pullExpiresMs;

/** The stream's last sequence, as its leader says now. */
export type LastSequence = () => Promise<number>;

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

  readonly #lastSequence: LastSequence | undefined;

  constructor(
    js: JetStreamClient,
    stream: string,
    startSequence: number,
    retryMs: number,
    headersOnly = false,
    lastSequence?: LastSequence,
  ) {
    this.#js = js;
    this.#lastSequence = lastSequence;
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

  /** The next message; waits for it. `undefined` once the reader is closed. */
  async next(): Promise<JsMsg | undefined> {
    if (!this.#opened) {
      this.#opened = true;
      void this.#run();
    }
    for (;;) {
      if (this.#closed) return undefined;
      if (this.#head < this.#buffer.length) return this.#take();
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return undefined;
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
   * Every `stallCheckMs` (an unreferenced timer): no message delivered since the last check, none waiting for
   * room, and the stream's last sequence beyond the last delivered at the previous check as at this one → stops
   * `messages` with `ConsumerStalled`. A failed request (an election) just waits for the next check.
   */
  #watch(messages: ConsumerMessages): NodeJS.Timeout {
    let delivered = this.#delivered;
    let behind = false;
    let asking = false;
    const timer = setInterval(() => {
      const lastSequence = this.#lastSequence;
      if (lastSequence === undefined || asking || this.#closed) return;
      const idle = this.#delivered === delivered && this.#wakePump === undefined;
      delivered = this.#delivered;
      if (!idle) {
        behind = false;
        return;
      }
      asking = true;
      lastSequence().then(
        (last) => {
          asking = false;
          const stalled = last > this.#delivered && this.#delivered === delivered;
          if (stalled && behind && !this.#closed) {
            messages.stop(new ConsumerStalled(`the consumer of stream ${this.#stream} delivers nothing`));
          }
          behind = stalled;
        },
        () => {
          asking = false;
        },
      );
    }, stallCheckMs);
    timer.unref();
    return timer;
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

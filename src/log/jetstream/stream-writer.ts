import type { JetStreamClient, JetStreamManager, PubAck } from '@nats-io/jetstream';
import { SluiceError } from '../../errors.js';
import { headersOf, msgIdHeader, offsetOf, type RecordMessage } from './message.js';
import { describe, publishOutcomeOf, readFailure, wrongLastMsgIdCode, type PublishOutcome } from './nats-errors.js';

/** Publishes awaiting their acknowledgement at once: enough to fill a round trip, few enough to bound memory. */
const inFlightMax = 1024;
/** The first pause before a round of retries, doubled up to `retryPauseMsMax`. */
const retryPauseMsMin = 50;
const retryPauseMsMax = 1000;

export interface WriterHost {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly stream: string;
  /** Unique to this writer: message ids are `<writerId>.<sequence>`. */
  readonly writerId: string;
  readonly publishTimeoutMs: number;
  /** How long publishing may keep failing before the appends fail with `UNAVAILABLE`. */
  readonly retryMs: number;
  /** Records up to `offset` were stored and acknowledged (called in offset order, before the appends resolve). */
  visible(offset: number): void;
}

/** The stream's last message when the writer starts: its sequence (0 for none) and message id, if any. */
export interface StreamTail {
  readonly sequence: number;
  readonly msgId: string | undefined;
}

interface PendingBatch {
  readonly outgoing: Outgoing[];
  acked: number;
  readonly resolve: (offsets: number[]) => void;
  readonly reject: (error: Error) => void;
}

interface Outgoing {
  readonly message: RecordMessage;
  readonly batch: PendingBatch;
  sequence: number;
  msgId: string;
  /** The id the stream's last message must have for this one to be stored; `undefined`: check the sequence only. */
  previous: string | undefined;
  acked: boolean;
  inFlight: boolean;
  /** How the last attempt failed (`undefined`: it has not). */
  outcome: PublishOutcome | undefined;
  /** The last failure, for the error a sticky failure carries. */
  error: unknown;
  rejectedCode: number | undefined;
}

/**
 * Appends records to a stream so that the stream's order is the order of the `append` calls, each record exactly
 * once, across timeouts, leader elections and retries, while keeping up to `inFlightMax` publishes in flight.
 *
 * Each record is published with the sequence it must get (`Nats-Expected-Last-Sequence`: the one before it), the
 * id of the message that must precede it (`Nats-Expected-Last-Msg-Id`: our previous record's), and its own
 * message id. So a record can only be stored right after its predecessor, and a retry of a record that was
 * stored after all is dropped by the server as a duplicate and acknowledged with its sequence.
 *
 * When a publish fails the writer stops sending, waits for every publish in flight to settle, looks at the
 * first record not acknowledged, and sends everything from there again in order:
 * - its attempt timed out or found no server: it is sent again as it was;
 * - its expectation was refused: the writer reads the stream at the record's sequence. Our record there → it
 *   was stored. Another writer's record there → a conflict: none of ours from there on can ever be stored (each
 *   expects its predecessor), so they are renumbered after the stream's new last message and sent again; a
 *   second writer thus interleaves safely, each writer's records keeping their order. Nothing there and the
 *   stream forgot its last message id (a restarted server does) while our predecessor is in place → sent again
 *   expecting the sequence only.
 * Failures that go on longer than `retryMs` fail every pending append with `UNAVAILABLE`, and the writer stays
 * failed (the outcome of those appends is unknown: reopen to read it). `retryMs` must stay under the stream's
 * duplicate window, or a late retry could store a record twice.
 */
export class StreamWriter {
  readonly #host: WriterHost;
  readonly #queue: Outgoing[] = [];
  /** `#queue[#head]` is the first record not yet acknowledged and drained. */
  #head = 0;
  /** The next record to send. */
  #send = 0;
  #inFlight = 0;
  #recovering = false;
  /** When publishing started failing without success since; `undefined` while it works. */
  #failingSinceMs: number | undefined;
  #retryRound = 0;
  #lastSequence: number;
  #lastMsgId: string | undefined;
  #failure: SluiceError | undefined;
  #settled: (() => void)[] = [];

  constructor(host: WriterHost, tail: StreamTail) {
    this.#host = host;
    this.#lastSequence = tail.sequence;
    this.#lastMsgId = tail.msgId;
  }

  /** The sticky failure, once publishing has failed for good. */
  get failure(): SluiceError | undefined {
    return this.#failure;
  }

  /** The sequence of the first record appended but not yet acknowledged, or `undefined`. */
  get unresolvedSequence(): number | undefined {
    return this.#queue[this.#head]?.sequence;
  }

  /** Publishes `messages` as the next records; resolves to their offsets once all are acknowledged. */
  append(messages: readonly RecordMessage[]): Promise<number[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise<number[]>((resolve, reject) => {
      const batch: PendingBatch = { outgoing: [], acked: 0, resolve, reject };
      for (const message of messages) {
        const sequence = ++this.#lastSequence;
        const msgId = `${this.#host.writerId}.${sequence}`;
        const outgoing: Outgoing = {
          message,
          batch,
          sequence,
          msgId,
          previous: this.#lastMsgId,
          acked: false,
          inFlight: false,
          outcome: undefined,
          error: undefined,
          rejectedCode: undefined,
        };
        this.#lastMsgId = msgId;
        batch.outgoing.push(outgoing);
        this.#queue.push(outgoing);
      }
      this.#pump();
    });
  }

  /** Resolves once every append made so far has resolved or failed. */
  settled(): Promise<void> {
    if (this.#head === this.#queue.length) return Promise.resolve();
    return new Promise((resolve) => this.#settled.push(resolve));
  }

  #pump(): void {
    if (this.#recovering) return;
    while (this.#send < this.#queue.length && this.#inFlight < inFlightMax) {
      this.#publish(this.#queue[this.#send++] as Outgoing);
    }
  }

  #publish(outgoing: Outgoing): void {
    outgoing.inFlight = true;
    outgoing.outcome = undefined;
    this.#inFlight++;
    const lastSequence = outgoing.sequence - 1;
    this.#host.js
      .publish(outgoing.message.subject, outgoing.message.payload, {
        msgID: outgoing.msgId,
        expect: outgoing.previous === undefined ? { lastSequence } : { lastSequence, lastMsgID: outgoing.previous },
        headers: headersOf(outgoing.message),
        timeout: this.#host.publishTimeoutMs,
      })
      .then(
        (ack) => this.#acknowledged(outgoing, ack),
        (error: unknown) => this.#refused(outgoing, error),
      );
  }

  #acknowledged(outgoing: Outgoing, ack: PubAck): void {
    outgoing.inFlight = false;
    this.#inFlight--;
    if (ack.seq === outgoing.sequence) {
      outgoing.acked = true;
      this.#failingSinceMs = undefined;
      this.#retryRound = 0;
    } else {
      // The expectations make this impossible; if a server ever does it, the log order is no longer ours to keep.
      outgoing.outcome = 'failed';
      const where = `at sequence ${ack.seq}, not ${outgoing.sequence}`;
      outgoing.error = new Error(`the stream stored message ${outgoing.msgId} ${where}`);
      this.#recovering = true;
    }
    this.#next();
  }

  #refused(outgoing: Outgoing, error: unknown): void {
    outgoing.inFlight = false;
    this.#inFlight--;
    outgoing.outcome = publishOutcomeOf(error);
    outgoing.error = error;
    outgoing.rejectedCode = (error as { code?: number }).code;
    this.#failingSinceMs ??= Date.now();
    this.#recovering = true;
    this.#next();
  }

  #next(): void {
    this.#drain();
    if (!this.#recovering) this.#pump();
    else if (this.#inFlight === 0 && this.#failure === undefined) void this.#recover();
  }

  /** Resolves the batches whose records are all acknowledged, in order. */
  #drain(): void {
    while (this.#head < this.#queue.length && (this.#queue[this.#head] as Outgoing).acked) {
      const outgoing = this.#queue[this.#head++] as Outgoing;
      const batch = outgoing.batch;
      if (++batch.acked === batch.outgoing.length) {
        this.#host.visible(offsetOf(outgoing.sequence));
        batch.resolve(batch.outgoing.map((record) => offsetOf(record.sequence)));
      }
    }
    if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#send -= this.#head;
      this.#head = 0;
    }
    if (this.#head === this.#queue.length) this.#wakeSettled();
  }

  /** Runs with nothing in flight: decides what the first unacknowledged record's failure means, then resends. */
  async #recover(): Promise<void> {
    try {
      for (;;) {
        this.#drain();
        const first = this.#queue[this.#head];
        if (first === undefined) break;
        if (first.outcome === 'failed') {
          this.#fail(
            new SluiceError('WRITE_FAILED', `the stream ${this.#host.stream} refused a record: ${describe(first.error)}`, {
              cause: first.error,
              offset: offsetOf(first.sequence),
            }),
          );
          return;
        }
        if (first.outcome !== 'rejected') break;
        const verdict = await this.#verify(first);
        if (verdict === 'stored') {
          first.acked = true;
          continue;
        }
        if (verdict === 'conflict') await this.#renumber();
        break;
      }
      const failingMs = this.#failingSinceMs === undefined ? 0 : Date.now() - this.#failingSinceMs;
      if (failingMs > this.#host.retryMs) {
        const first = this.#queue[this.#head];
        this.#fail(
          new SluiceError(
            'UNAVAILABLE',
            `the stream ${this.#host.stream} has not stored records for ${failingMs} ms ` +
              `(${describe(first?.error)}); the last appends may or may not be in it`,
            { cause: first?.error },
          ),
        );
        return;
      }
      await pause(Math.min(retryPauseMsMax, retryPauseMsMin * 2 ** this.#retryRound++));
    } catch (error) {
      // Reading the stream failed too: count it as a failed round.
      const first = this.#queue[this.#head];
      if (first !== undefined) {
        first.outcome = 'unknown';
        first.error = error;
      }
      this.#failingSinceMs ??= Date.now();
      await pause(retryPauseMsMax);
      void this.#recover();
      return;
    }
    if (this.#failure !== undefined) return;
    this.#send = this.#head;
    this.#recovering = false;
    this.#pump();
  }

  /** What the stream holds where `outgoing` should be, after the server refused its expectation. */
  async #verify(outgoing: Outgoing): Promise<'stored' | 'conflict' | 'resend'> {
    const { jsm, stream } = this.#host;
    const there = await jsm.streams.getMessage(stream, { seq: outgoing.sequence });
    if (there !== null) return there.header.get(msgIdHeader) === outgoing.msgId ? 'stored' : 'conflict';
    if (outgoing.rejectedCode === wrongLastMsgIdCode && outgoing.previous !== undefined) {
      const before = outgoing.sequence > 1 ? await jsm.streams.getMessage(stream, { seq: outgoing.sequence - 1 }) : null;
      if (before?.header.get(msgIdHeader) !== outgoing.previous) return 'conflict';
      // Our predecessor is in place and nothing follows it: only the server's memory of the last id is gone.
      outgoing.previous = undefined;
    }
    return 'resend';
  }

  /** Another writer took our sequences: every record not acknowledged moves after the stream's last message. */
  async #renumber(): Promise<void> {
    const { jsm, stream, writerId } = this.#host;
    const info = await jsm.streams.info(stream).catch((error: unknown) => {
      throw readFailure(`reading the state of stream ${stream}`, error);
    });
    let sequence = info.state.last_seq;
    const last = sequence > 0 ? await jsm.streams.getMessage(stream, { seq: sequence }) : null;
    let previous = last?.header.get(msgIdHeader) || undefined;
    for (let i = this.#head; i < this.#queue.length; i++) {
      const outgoing = this.#queue[i] as Outgoing;
      outgoing.sequence = ++sequence;
      outgoing.msgId = `${writerId}.${sequence}`;
      outgoing.previous = previous;
      outgoing.outcome = undefined;
      previous = outgoing.msgId;
    }
    this.#lastSequence = sequence;
    this.#lastMsgId = previous;
    // Another writer is making progress: the clock for giving up starts again.
    this.#failingSinceMs = undefined;
    this.#retryRound = 0;
  }

  #fail(error: SluiceError): void {
    this.#failure = error;
    const batches = new Set<PendingBatch>();
    for (let i = this.#head; i < this.#queue.length; i++) batches.add((this.#queue[i] as Outgoing).batch);
    this.#queue.length = 0;
    this.#head = 0;
    this.#send = 0;
    for (const batch of batches) batch.reject(error);
    this.#wakeSettled();
  }

  #wakeSettled(): void {
    const waiting = this.#settled;
    this.#settled = [];
    for (const resolve of waiting) resolve();
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

import type { JetStreamClient, JetStreamManager, PubAck } from '@nats-io/jetstream';
import { SluiceError } from '../../errors.js';
import { batchHeaderValue } from './batch.js';
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
  /** How many of its records are acknowledged. */
  acked: number;
  readonly resolve: (offsets: number[]) => void;
  readonly reject: (error: Error) => void;
}

interface Outgoing {
  readonly message: RecordMessage;
  readonly batch: PendingBatch;
  /** Its place in its batch. */
  readonly index: number;
  sequence: number;
  msgId: string;
  /** Its `Sluice-Batch` header, in a batch of several records (set with the batch's sequences). */
  batchHeader: string | undefined;
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
 * A batch of several records is atomic for readers (`batch.ts`): its messages carry `Sluice-Batch` headers and
 * are stored at consecutive sequences, and a batch resolves only once all of them are acknowledged.
 *
 * When a publish fails the writer stops sending, waits for every publish in flight to settle, looks at the
 * first record not acknowledged, and sends everything from there again in order:
 * - its attempt timed out or found no server: it is sent again as it was;
 * - its expectation was refused: the writer reads the stream at the record's sequence. Our record there → it
 *   was stored. Another writer's record there → a conflict: none of ours from there on can ever be stored (each
 *   expects its predecessor), so they are renumbered after the stream's new last message and sent again, from
 *   the first record of their batch (the batch's records already stored are followed by another writer's, so
 *   no reader will ever show them: the whole batch is stored again, under a new batch id); a second writer thus
 *   interleaves safely, each writer's records keeping their order. Nothing there and the
 *   stream forgot its last message id (a restarted server does) while our predecessor is in place → sent again
 *   expecting the sequence only.
 * Failures that go on longer than `retryMs` fail every pending append with `UNAVAILABLE`, and the writer stays
 * failed (the outcome of those appends is unknown: reopen to read it). `retryMs` must stay under the stream's
 * duplicate window, or a late retry could store a record twice.
 */
export class StreamWriter {
  readonly #host: WriterHost;
  readonly #queue: Outgoing[] = [];
  /** `#queue[#head]` is the first record of the first batch not yet resolved. */
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

  /** The sequence of the first record of the first batch appended but not yet resolved, or `undefined`. */
  get unresolvedSequence(): number | undefined {
    return this.#queue[this.#head]?.sequence;
  }

  /** The message id of that record (it changes with its sequence when another writer took the sequence). */
  get unresolvedMsgId(): string | undefined {
    return this.#queue[this.#head]?.msgId;
  }

  /** Publishes `messages` as the next records; resolves to their offsets once all are acknowledged. */
  append(messages: readonly RecordMessage[]): Promise<number[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise<number[]>((resolve, reject) => {
      const batch: PendingBatch = { outgoing: [], acked: 0, resolve, reject };
      for (const [index, message] of messages.entries()) {
        const sequence = ++this.#lastSequence;
        const msgId = `${this.#host.writerId}.${sequence}`;
        const outgoing: Outgoing = {
          message,
          batch,
          index,
          sequence,
          msgId,
          batchHeader: undefined,
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
      labelBatch(batch);
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
        headers: headersOf(outgoing.message, outgoing.batchHeader),
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
      // A record resent after a lost acknowledgement is acknowledged twice (the server drops the copy): count once.
      if (!outgoing.acked) outgoing.batch.acked++;
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
    while (this.#head < this.#queue.length) {
      const batch = (this.#queue[this.#head] as Outgoing).batch;
      if (batch.acked < batch.outgoing.length) break;
      this.#head += batch.outgoing.length;
      this.#host.visible(offsetOf((batch.outgoing[batch.outgoing.length - 1] as Outgoing).sequence));
      batch.resolve(batch.outgoing.map((record) => offsetOf(record.sequence)));
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
        const first = this.#firstUnacknowledged();
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
          first.batch.acked++;
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
    const first = this.#firstUnacknowledged();
    this.#send = first === undefined ? this.#queue.length : this.#queue.indexOf(first, this.#head);
    this.#recovering = false;
    this.#pump();
  }

  /** The first record not acknowledged: in the first unresolved batch (whose first records may be). */
  #firstUnacknowledged(): Outgoing | undefined {
    for (let i = this.#head; i < this.#queue.length; i++) {
      const outgoing = this.#queue[i] as Outgoing;
      if (!outgoing.acked) return outgoing;
    }
    return undefined;
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

  /**
   * Another writer took our sequences: every record of every unresolved batch (the first one's acknowledged
   * records too: another writer's message now follows them, so they will never be records) moves after the
   * stream's last message.
   */
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
      outgoing.acked = false;
      outgoing.batch.acked = 0;
      previous = outgoing.msgId;
      if (outgoing.index === outgoing.batch.outgoing.length - 1) labelBatch(outgoing.batch);
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

/** Gives the records of a batch of several their `Sluice-Batch` headers, from the sequences they now have. */
function labelBatch(batch: PendingBatch): void {
  const count = batch.outgoing.length;
  if (count < 2) return;
  const id = (batch.outgoing[0] as Outgoing).msgId;
  for (const outgoing of batch.outgoing) outgoing.batchHeader = batchHeaderValue({ index: outgoing.index, count, id });
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

import { randomBytes } from 'node:crypto';
import {
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StreamInfo,
  type StreamState,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { codecs, type JsonValue } from '../../codec/codec.js';
import { SluiceError, throwIfAborted } from '../../errors.js';
import { AbstractLog, type EncodedEntry, type RecordCursor } from '../abstract-log.js';
import type { LogRecord, LogSupports, SinceListener } from '../log.js';
import type { ScanRange } from '../range.js';
import {
  BatchAssembler,
  batchPartOf,
  batchRecordsMax,
  completesItself,
  lastSequenceOf,
  type BatchPart,
} from './batch.js';
import { connectTo } from './connection.js';
import { ForwardCursor, ReverseCursor, type CursorHost } from './cursors.js';
import {
  fieldsOf,
  jsStored,
  messageOverheadBytes,
  msgIdHeader,
  offsetOf,
  sequenceOf,
  storedOf,
  toMessage,
  type RecordMessage,
  type StoredMessage,
} from './message.js';
import { isStreamNotFound, readFailure, retrying } from './nats-errors.js';
import { isAbsence, OrderedReader } from './ordered-reader.js';
import {
  checkOptions,
  publishTimeoutMsDefault,
  retryMsDefault,
  type JetStreamLogInfo,
  type JetStreamLogOptions,
} from './options.js';
import { StreamWriter } from './stream-writer.js';

export type { JetStreamLogInfo, JetStreamLogOptions } from './options.js';
export type { JetStreamCredentials, JetStreamTls } from './connection.js';

const supports: LogSupports = { keys: true, times: true, persistent: true, readonly: true };

/** The duplicate window of streams this log creates: retries within it are dropped by the server. */
const duplicateWindowMs = 120_000;
/** The pause before following starts again after the servers stayed away for longer than `retryMs`. */
const followRestartMs = 1000;

/**
 * A log kept in a NATS JetStream stream, on one server or replicated on a cluster, so that several processes and
 * hosts share one log (each with its own views, see `Sluice.open(dir, { log })`).
 *
 * **Offsets** are dense: the record in stream sequence `s` has offset `s − 1` (the first record is 0, the next
 * offset is always the last one plus one), so `get` of any offset up to `since` finds a record. Keys and times
 * travel in the subject and headers (`message.ts` has the layout), so the server can look records up by key.
 *
 * **Order**: the stream's order is the order of this log's `append` calls, every record exactly once, across
 * publish timeouts, leader elections and retries (`StreamWriter` says how). Several logs may append to one
 * stream: each one's records keep their order and the writers interleave.
 *
 * **Visibility**: an append resolves once the stream acknowledged it, and `since` moves then. Records other
 * processes append reach `since` when this log asks the server (a read past `since`, the end of a stream) and,
 * once something subscribes or a live stream waits, as they are stored (the log then follows the stream with a
 * headers-only consumer until it closes).
 *
 * **Durability**: an acknowledged append is stored by the stream: with three replicas, on two of the three
 * servers, so losing any one server loses nothing acknowledged. The servers write to their files at once and
 * flush them to disk on their own schedule (NATS 2.9 has no client fsync), so `sync()` waits for the pending
 * appends and resolves to `since`; it adds no promise beyond the acknowledgement.
 *
 * **Batches** are atomic: a batch of several records is one message per record (NATS 2.9 has no atomic
 * multi-message publish), each marked with its place in the batch (`batch.ts`), and no reader (`get`, streams,
 * live streams, `since`, `info`) shows any of them before the last one is stored. A batch whose writer died
 * half-way is skipped by every reader, for ever (`get` of one of its offsets fails with `NOT_A_RECORD`), so
 * offsets are dense but an offset up to `since` may hold no record.
 *
 * **Limits**: a value (with its headers) must fit in one message: the server's `max_payload` (1 MiB by default)
 * less `messageOverheadBytes`; a larger one is a `RangeError`, and so is a batch of more than `batchRecordsMax`
 * records.
 *
 * **Messages removed behind the log's back** (a purge, a stream limit, a deleted message) are skipped by every
 * reader: `get` of one fails with `OFFSET_OUT_OF_RANGE` below the stream's first sequence and `RECORD_DELETED`
 * above it. A stream waiting for messages deleted after the last one it received (the stream's last messages)
 * learns so from the stream's state, which its reader asks after short pauses (0.2 s, then longer), and moves on.
 *
 * **Errors**: `UNAVAILABLE` (servers unreachable, JetStream off, no quorum for longer than `retryMs`),
 * `UNAUTHORIZED` (the servers refused the credentials, or TLS found no trusted certificate), `LOG_NOT_FOUND` (no
 * such stream and `create: false` or read-only), `NOT_A_LOG` (the stream does not capture `<subject>.>`, or its
 * last message is not a Sluice record), `FOREIGN_MESSAGE` (reading a message that is not a Sluice record),
 * `NOT_A_RECORD` (`get` of a message of an abandoned batch), `RECORD_DELETED`.
 */
export class JetStreamLog<T = JsonValue> extends AbstractLog<T> {
  readonly supports = supports;
  readonly streamName: string;
  readonly subject: string;
  readonly readonly: boolean;
  /** How long reads and appends ride out an election or a lost server before they fail with `UNAVAILABLE`. */
  readonly #retryMs: number;
  readonly #connection: NatsConnection;
  readonly #ownsConnection: boolean;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  #writer: StreamWriter | undefined;
  #valueBytesMax = 0;
  readonly #readers = new Set<OrderedReader>();
  #follower: OrderedReader | undefined;
  /** The stream's first sequence at the last look at its state: what lies below was removed. */
  #firstSequence = 1;

  private constructor(
    options: JetStreamLogOptions<T>,
    connection: NatsConnection,
    owns: boolean,
    jsm: JetStreamManager,
  ) {
    super({ codec: options.codec ?? codecs.json<T>(), ...(options.now ? { now: options.now } : {}) });
    this.streamName = options.stream;
    this.subject = options.subject ?? options.stream;
    this.readonly = options.readonly ?? false;
    this.#retryMs = options.retryMs ?? retryMsDefault;
    this.#connection = connection;
    this.#ownsConnection = owns;
    this.#jsm = jsm;
    this.#js = jetstream(connection);
  }

  /**
   * Connects (unless given a connection), finds or creates the stream, and reads its last record. Fails with
   * `UNAVAILABLE`, `LOG_NOT_FOUND` or `NOT_A_LOG`; wrong options throw `TypeError` / `RangeError` at once.
   */
  static open<T = JsonValue>(options: JetStreamLogOptions<T>): Promise<JetStreamLog<T>> {
    checkOptions(options);
    return JetStreamLog.#open(options);
  }

  static async #open<T>(options: JetStreamLogOptions<T>): Promise<JetStreamLog<T>> {
    const owns = options.connection === undefined;
    let connection = options.connection;
    try {
      connection ??= await connectTo({
        servers: options.servers as string | readonly string[],
        credentials: options.credentials,
        tls: options.tls,
      });
      const current = connection;
      // Checking that JetStream answers is a request an election in progress can time out: repeat it.
      const jsm = await retrying(options.retryMs ?? retryMsDefault, () => jetstreamManager(current)).catch(
        (error: unknown) => {
          throw readFailure('JetStream does not answer on the NATS servers', error);
        },
      );
      const log = new JetStreamLog<T>(options, connection, owns, jsm);
      await log.#start(options);
      return log;
    } catch (error) {
      if (owns) await connection?.close().catch(() => undefined);
      throw error;
    }
  }

  async #start(options: JetStreamLogOptions<T>): Promise<void> {
    const info = await this.#streamInfo(options);
    const pattern = `${this.subject}.>`;
    if (!info.config.subjects?.includes(pattern)) {
      throw new SluiceError(
        'NOT_A_LOG',
        `stream ${this.streamName} does not capture ${pattern} (its subjects: ${(info.config.subjects ?? []).join(', ')})`,
      );
    }
    const last = info.state.last_seq;
    // An empty stream reports 0.
    this.#firstSequence = Math.max(1, info.state.first_seq);
    let msgId: string | undefined;
    let since = last;
    if (last > 0) {
      const message = await retrying(
        this.#retryMs,
        () => this.#jsm.streams.getMessage(this.streamName, { seq: last }),
        this.#stopped,
      ).catch((error: unknown) => {
        throw readFailure(`reading the last message of stream ${this.streamName}`, error);
      });
      if (message !== null) {
        try {
          fieldsOf(this.subject, storedOf(message));
        } catch (error) {
          throw new SluiceError('NOT_A_LOG', `stream ${this.streamName} is not a Sluice log: ${(error as Error).message}`, {
            cause: error,
          });
        }
        msgId = message.header.get(msgIdHeader) || undefined;
        since = await this.#lastRecordSequence(last, info.state.first_seq - 1, batchPartOf(message.header));
      }
    }
    const maxPayload = this.#connection.info?.max_payload ?? 1024 * 1024;
    const maxMessage = info.config.max_msg_size > 0 ? Math.min(info.config.max_msg_size, maxPayload) : maxPayload;
    this.#valueBytesMax = maxMessage - messageOverheadBytes;
    if (!this.readonly) {
      const windowMs = info.config.duplicate_window / 1e6;
      const retryMs = Math.min(this.#retryMs, windowMs / 2);
      this.#writer = new StreamWriter(
        {
          js: this.#js,
          jsm: this.#jsm,
          stream: this.streamName,
          writerId: randomBytes(12).toString('base64url'),
          publishTimeoutMs: options.publishTimeoutMs ?? publishTimeoutMsDefault,
          retryMs,
          visible: (offset) => this._advance(offset),
        },
        { sequence: last, msgId },
      );
    }
    this._opened(offsetOf(since));
  }

  /**
   * The sequence of the last record at or below `sequence` (whose message's batch part is `part`, when known):
   * `sequence` itself unless it holds a message of a batch that is not complete (pending or abandoned: either way
   * not a record yet), and then the last record before that batch. `floor` when there is none above it.
   */
  async #lastRecordSequence(sequence: number, floor: number, part?: BatchPart | null): Promise<number> {
    let known = part;
    while (sequence > floor) {
      if (known === undefined) {
        const message = await this.#message(sequence);
        if (message === null) {
          sequence--;
          continue;
        }
        known = batchPartOf(message.header);
      }
      if (completesItself(known)) return sequence;
      sequence -= (known as BatchPart).index + 1;
      known = undefined;
    }
    return floor;
  }

  async #streamInfo(options: JetStreamLogOptions<T>): Promise<StreamInfo> {
    const what = `opening stream ${this.streamName}`;
    try {
      // An election may be under way: reading is safe to repeat.
      return await retrying(this.#retryMs, () => this.#jsm.streams.info(this.streamName), this.#stopped);
    } catch (error) {
      if (!isStreamNotFound(error)) throw this.#failure(what, error);
    }
    if (this.readonly || options.create === false) {
      throw new SluiceError('LOG_NOT_FOUND', `there is no stream ${this.streamName} on the NATS servers`);
    }
    try {
      return await this.#jsm.streams.add({
        name: this.streamName,
        description: 'a Sluice log',
        subjects: [`${this.subject}.>`],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        num_replicas: options.replicas ?? 1,
        duplicate_window: nanos(duplicateWindowMs),
        allow_direct: true,
      });
    } catch (error) {
      // Another process may have created it meanwhile: then it is there to read.
      return this.#jsm.streams.info(this.streamName).catch(() => {
        throw this.#failure(`creating stream ${this.streamName}`, error);
      });
    }
  }

  protected _append(entries: readonly EncodedEntry[]): Promise<number[]> {
    if (this.#writer === undefined) {
      return Promise.reject(new SluiceError('READ_ONLY', `the log on stream ${this.streamName} was opened read-only`));
    }
    if (entries.length > batchRecordsMax) {
      throw new RangeError(`a batch holds at most ${batchRecordsMax} records, got ${entries.length}`);
    }
    const messages = new Array<RecordMessage>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const message = toMessage(this.subject, entries[i] as EncodedEntry);
      const bytes = message.payload.length + (message.key?.length ?? 0);
      if (bytes > this.#valueBytesMax) {
        throw new RangeError(
          `record ${i} takes ${bytes} bytes; a message of stream ${this.streamName} holds at most ${this.#valueBytesMax}`,
        );
      }
      messages[i] = message;
    }
    return this.#writer.append(messages);
  }

  protected override _appendRefusal(): Error | undefined {
    if (this.#writer === undefined) {
      return new SluiceError('READ_ONLY', `the log on stream ${this.streamName} was opened read-only`);
    }
    return this.#writer.failure;
  }

  protected async _read(offset: number): Promise<LogRecord<T>> {
    if (offset > this.since) await this.#refresh();
    if (offset > this.since) {
      throw new SluiceError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside the log`, { offset });
    }
    const message = await this.#message(sequenceOf(offset));
    if (message === null) {
      const info = await this.#info(`reading stream ${this.streamName}`);
      if (sequenceOf(offset) < info.state.first_seq) {
        throw new SluiceError('OFFSET_OUT_OF_RANGE', `offset ${offset} is before the first record`, { offset });
      }
      throw new SluiceError('RECORD_DELETED', `the record at offset ${offset} was deleted`, { offset });
    }
    const record = this.#decode(storedOf(message));
    const part = batchPartOf(message.header);
    if (!completesItself(part) && !(await this.#completes(part as BatchPart, message.seq))) {
      throw new SluiceError(
        'NOT_A_RECORD',
        `offset ${offset} holds a message of a batch that was never completed (its writer stopped half-way): not a record`,
        { offset },
      );
    }
    return record;
  }

  /** True when the batch of `part`, a message stored at `sequence`, has its last message stored. */
  async #completes(part: BatchPart, sequence: number): Promise<boolean> {
    const message = await this.#message(lastSequenceOf(part, sequence));
    const last = message === null ? undefined : batchPartOf(message.header);
    return last?.id === part.id && last.count === part.count && last.index === part.count - 1;
  }

  /** The message at `sequence`, read from the stream's leader (so this log's own appends are always there). */
  #message(sequence: number): ReturnType<JetStreamManager['streams']['getMessage']> {
    const read = (): ReturnType<JetStreamManager['streams']['getMessage']> =>
      this.#jsm.streams.getMessage(this.streamName, { seq: sequence });
    return retrying(this.#retryMs, read, this.#stopped).catch((error: unknown) => {
      throw this.#failure(`reading stream ${this.streamName} at sequence ${sequence}`, error);
    });
  }

  /** The stream's state and configuration, read from the server (riding out an election). */
  async #info(what: string): Promise<StreamInfo> {
    const info = await retrying(this.#retryMs, () => this.#jsm.streams.info(this.streamName), this.#stopped).catch(
      (error: unknown) => {
        throw this.#failure(what, error);
      },
    );
    // Another server, lagging, may answer later with an earlier first sequence: the latest seen stands.
    this.#firstSequence = Math.max(this.#firstSequence, info.state.first_seq);
    return info;
  }

  #decode(message: StoredMessage): LogRecord<T> {
    const fields = fieldsOf(this.subject, message);
    const data = message.data;
    const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return this._record(offsetOf(message.seq), buffer, 0, buffer.length, fields.time, fields.key);
  }

  /**
   * The offset below which the stream holds no message any more (a purge, a stream limit), as this log last learnt
   * it from the server (when it opened, and at each stream's start, `get` and `info`).
   */
  get firstOffset(): number {
    return offsetOf(this.#firstSequence);
  }

  protected _cursor(range: ScanRange): RecordCursor<T> {
    const host: CursorHost<T> = {
      since: 0,
      firstSequence: 1,
      refresh: () => this.#refresh(),
      observed: (sequence) => this.#observed(sequence),
      reader: (start) => this.#reader(start, false),
      decode: (message) => this.#decode(jsStored(message)),
    };
    Object.defineProperty(host, 'since', { get: () => this.since });
    Object.defineProperty(host, 'firstSequence', { get: () => this.#firstSequence });
    return range.reverse ? new ReverseCursor(host, range) : new ForwardCursor(host, range);
  }

  #reader(start: number, headersOnly: boolean): OrderedReader {
    const streamState = async (deletedDetails: boolean): Promise<StreamState> =>
      (await this.#jsm.streams.info(this.streamName, deletedDetails ? { deleted_details: true } : undefined)).state;
    const reader = new OrderedReader(this.#js, this.streamName, start, this.#retryMs, headersOnly, streamState);
    // Opened once closing has begun (info() after its first request): it reads nothing.
    if (this.#stopped()) reader.close();
    this.#readers.add(reader);
    const close = reader.close.bind(reader);
    reader.close = () => {
      this.#readers.delete(reader);
      close();
    };
    return reader;
  }

  readonly #stopped = (): boolean => this.status === 'closing' || this.status === 'closed';

  /** A failed request: `LOG_CLOSED` when the log closed meanwhile (closing drops the connection). */
  #failure(what: string, error: unknown): Error {
    return this.status === 'closing' || this.status === 'closed' ? this._closedError() : readFailure(what, error);
  }

  /** Learns the stream's last record from the server. */
  async #refresh(): Promise<void> {
    if (this.status !== 'open') return;
    const info = await this.#info(`reading the state of stream ${this.streamName}`);
    const known = sequenceOf(this.since);
    // This log's own unresolved appends are not visible yet: look below them. Read after the state, so that a
    // renumbering (below) can only move them past the state's last sequence.
    const unresolved = this.#writer?.unresolvedSequence;
    const unresolvedId = this.#writer?.unresolvedMsgId;
    let top = info.state.last_seq;
    if (unresolved !== undefined && top >= unresolved) {
      // The sequence the writer counts on may be stale: another writer may have taken it, and the writer will move
      // its records after that one's. Capping at it regardless hid the other writer's records stored before this
      // read began (a get of them failed with OFFSET_OUT_OF_RANGE, a stream ended without them). Our records are
      // stored at that sequence or not at all (each expects its predecessor), so one request tells.
      const there = await this.#message(unresolved);
      if (there === null || there.header.get(msgIdHeader) === unresolvedId) top = unresolved - 1;
    }
    if (top <= known) return;
    const floor = Math.max(known, info.state.first_seq - 1);
    const last = await this.#lastRecordSequence(top, floor);
    // Not `#observed`: its cap at the unresolved sequence is the stale one this has just checked.
    if (this.status === 'open') this._advance(offsetOf(last));
  }

  /** The message at `sequence` is stored: `since` follows, but never past this log's own unresolved appends. */
  #observed(sequence: number): void {
    const unresolved = this.#writer?.unresolvedSequence;
    const visible = unresolved !== undefined && sequence >= unresolved ? unresolved - 1 : sequence;
    if (this.status === 'open') this._advance(offsetOf(visible));
  }

  override subscribe(listener: SinceListener): () => void {
    const unsubscribe = super.subscribe(listener);
    this.#follow();
    return unsubscribe;
  }

  protected override _followStart(): void {
    this.#follow();
  }

  /** Follows the stream's new messages (headers only) so `since` takes in other writers' records as they land. */
  #follow(): void {
    if (this.#follower !== undefined || this.status !== 'open') return;
    const follower = this.#reader(sequenceOf(this.since) + 1, true);
    this.#follower = follower;
    const batches = new BatchAssembler<JsMsg>();
    void (async () => {
      try {
        for (let message = await follower.next(); message !== undefined; message = await follower.next()) {
          if (isAbsence(message)) {
            batches.absentThrough(message.absentThrough);
            continue;
          }
          const records = batches.push(message);
          const last = records[records.length - 1];
          if (last !== undefined) this.#observed(last.seq);
        }
      } catch {
        // The servers stayed away for longer than retryMs. Reads past `since` and stream ends still ask the
        // server; following starts again a little later.
        follower.close();
        await new Promise((resolve) => setTimeout(resolve, followRestartMs));
      }
      if (this.#follower === follower) {
        this.#follower = undefined;
        this.#follow();
      }
    })();
  }

  /**
   * What the server says of the stream now: its records, messages, bytes, first and last offset, replicas and
   * leader. Counting records reads every message's headers (the messages of unfinished batches are not records),
   * so it takes as long as a scan of the stream without its payloads. Fails with `ABORTED` through `signal`.
   */
  async info(options: { readonly signal?: AbortSignal } = {}): Promise<JetStreamLogInfo> {
    if (typeof options !== 'object' || options === null) throw new TypeError('info options must be an object');
    const signal = options.signal;
    throwIfAborted(signal, 'info');
    if (this.status !== 'open') throw this._closedError();
    await this.#refresh();
    const info = await this.#info(`reading the state of stream ${this.streamName}`);
    const { state, config, cluster } = info;
    const last = sequenceOf(this.since);
    let records = 0;
    let first = 0;
    if (state.messages > 0 && last >= state.first_seq) {
      const reader = this.#reader(state.first_seq, true);
      const batches = new BatchAssembler<JsMsg>();
      try {
        for (let message = await reader.next(true); message !== undefined; message = await reader.next(true)) {
          if (isAbsence(message)) {
            if (message.absentThrough >= last) break;
            batches.absentThrough(message.absentThrough);
            continue;
          }
          if (records % 4096 === 0) throwIfAborted(signal, 'info');
          // Another publisher's message is no record; it still ends a batch it interrupts, as for every reader.
          const foreign = !isSluiceMessage(this.subject, message);
          for (const record of batches.push(message)) {
            if (record.seq > last) break;
            if (foreign && record === message) continue;
            if (first === 0) first = record.seq;
            records++;
          }
          if (message.seq >= last) break;
        }
      } finally {
        reader.close();
      }
      if (this.status !== 'open') throw this._closedError();
    }
    return {
      stream: this.streamName,
      records,
      messages: state.messages,
      bytes: state.bytes,
      firstOffset: records === 0 ? -1 : offsetOf(first),
      lastOffset: records === 0 ? -1 : offsetOf(last),
      replicas: config.num_replicas,
      leader: cluster?.leader,
    };
  }

  protected async _sync(): Promise<number> {
    await this.#writer?.settled();
    if (this.#writer?.failure !== undefined) throw this.#writer.failure;
    return this.since;
  }

  protected async _close(): Promise<void> {
    // Reads end now: while the servers are away the pending appends may take up to `retryMs` to settle, and a
    // stream or info() waiting on a consumer meanwhile would wait as long before it met LOG_CLOSED.
    this.#follower = undefined;
    for (const reader of [...this.#readers]) reader.close();
    try {
      await this.#writer?.settled();
    } finally {
      if (this.#ownsConnection) await this.#connection.close().catch(() => undefined);
    }
  }
}

/** True when `message` reads as a record of the log on `subject` (by its subject and headers). */
function isSluiceMessage(subject: string, message: JsMsg): boolean {
  try {
    fieldsOf(subject, jsStored(message));
    return true;
  } catch {
    return false;
  }
}

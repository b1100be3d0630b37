import { createHash } from 'node:crypto';
import type { JsMsg } from '@nats-io/jetstream';
import { headers as createHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { SluiceError } from '../../errors.js';
import type { EncodedEntry } from '../abstract-log.js';
import { batchHeader, batchPartOf } from './batch.js';

/**
 * How one record is one JetStream message. Offsets are dense: the record in stream sequence `s` (sequences
 * start at 1 and are never reused) has offset `s − 1`, so the first record is offset 0 and every offset from the
 * stream's first to its last sequence is a record start.
 *
 * | Part                   | Content                                                                          |
 * |------------------------|----------------------------------------------------------------------------------|
 * | subject                | `<subject>.<key token>`, `<subject>` being the log's subject prefix               |
 * | key token              | `_`: no key · base64url of the key, for keys of 1…`keySubjectBytesMax` bytes ·    |
 * |                        | `~` + base64url(SHA-256 of the key) for longer keys                              |
 * | header `Sluice-Time`   | the record's time, decimal milliseconds since the Unix epoch. Required: it marks |
 * |                        | a message as written by Sluice                                                   |
 * | header `Sluice-Key`    | base64url of the key, only with a `~` token (the whole key does not fit a subject)|
 * | header `Nats-Msg-Id`   | `<writer id>.<sequence>`: the server drops a retried copy (see `StreamWriter`)    |
 * | header `Sluice-Batch`  | only in the messages of a batch of several records: `<index>/<count>/<batch id>`  |
 * |                        | (`batch.ts`: such a message is a record once its batch's last message is stored) |
 * | payload                | the bytes the codec encoded (a string as UTF-8)                                  |
 *
 * The key in the subject lets the server answer "the last record of this key" (`last_by_subj`) and filter by
 * key; neither `_` nor a `~` token is ever the base64url of a key, so the three forms cannot collide.
 */

/** Keys up to this size go whole into the subject (base64url: 4/3 as many characters). */
export const keySubjectBytesMax = 96;

export const timeHeader = 'Sluice-Time';
export const keyHeader = 'Sluice-Key';
export const msgIdHeader = 'Nats-Msg-Id';

const noKeyToken = '_';
const hashedKeyPrefix = '~';

/** The offset of the record in stream sequence `sequence`. */
export function offsetOf(sequence: number): number {
  return sequence - 1;
}

/** The stream sequence of the record at `offset`. */
export function sequenceOf(offset: number): number {
  return offset + 1;
}

/** A record ready to publish: what every attempt to publish it sends (headers are built per attempt). */
export interface RecordMessage {
  readonly subject: string;
  readonly payload: Uint8Array;
  readonly time: string;
  /** Only for a key too long for the subject. */
  readonly key: string | undefined;
}

/** The bytes a message takes beyond its payload and key header: subject, time, message id and expectations. */
export const messageOverheadBytes = 1024;

export function toMessage(subject: string, entry: EncodedEntry): RecordMessage {
  const payload = typeof entry.value === 'string' ? Buffer.from(entry.value, 'utf8') : entry.value;
  const key = entry.key;
  let token = noKeyToken;
  let long: string | undefined;
  if (key !== undefined) {
    if (key.length <= keySubjectBytesMax) {
      token = Buffer.from(key.buffer, key.byteOffset, key.length).toString('base64url');
    } else {
      token = hashedKeyPrefix + createHash('sha256').update(key).digest('base64url');
      long = Buffer.from(key.buffer, key.byteOffset, key.length).toString('base64url');
    }
  }
  return { subject: `${subject}.${token}`, payload, time: String(entry.time), key: long };
}

/**
 * The headers of one attempt to publish `message`, with its `Sluice-Batch` value when it is part of a batch (the
 * client adds the message id and expectations to them).
 */
export function headersOf(message: RecordMessage, batch: string | undefined): MsgHdrs {
  const headers = createHeaders();
  headers.set(timeHeader, message.time);
  if (message.key !== undefined) headers.set(keyHeader, message.key);
  if (batch !== undefined) headers.set(batchHeader, batch);
  return headers;
}

/** A message as a consumer or a direct read hands it out. */
export interface StoredMessage {
  readonly seq: number;
  readonly subject: string;
  readonly headers: MsgHdrs | undefined;
  readonly data: Uint8Array;
}

/** What a message says about its record, once checked to be one of ours. */
export interface RecordFields {
  readonly key: Uint8Array | undefined;
  readonly time: number;
}

/**
 * Reads the key and time of `message`, or throws `FOREIGN_MESSAGE` when it is not a record of the log whose
 * subject prefix is `subject` (another subject, a malformed key token, no or a malformed time).
 */
export function fieldsOf(subject: string, message: StoredMessage): RecordFields {
  const foreign = (why: string): SluiceError =>
    new SluiceError(
      'FOREIGN_MESSAGE',
      `the message at stream sequence ${message.seq} (subject ${message.subject}) was not written by Sluice: ${why}`,
      { offset: offsetOf(message.seq) },
    );
  const prefix = `${subject}.`;
  if (!message.subject.startsWith(prefix)) throw foreign(`its subject is not under ${subject}`);
  const token = message.subject.slice(prefix.length);
  const timeText = message.headers?.get(timeHeader) ?? '';
  if (!/^\d{1,16}$/.test(timeText) || !Number.isSafeInteger(Number(timeText))) {
    throw foreign(`it has no valid ${timeHeader} header`);
  }
  if (batchPartOf(message.headers) === null) throw foreign(`its ${batchHeader} header is not a batch part`);
  let key: Uint8Array | undefined;
  if (token === noKeyToken) {
    key = undefined;
  } else if (token.startsWith(hashedKeyPrefix)) {
    const bytes = Buffer.from(message.headers?.get(keyHeader) ?? '', 'base64url');
    if (bytes.length <= keySubjectBytesMax || createHash('sha256').update(bytes).digest('base64url') !== token.slice(1)) {
      throw foreign(`its ${keyHeader} header does not match the key token`);
    }
    key = new Uint8Array(bytes);
  } else {
    const bytes = Buffer.from(token, 'base64url');
    if (bytes.length === 0 || bytes.length > keySubjectBytesMax || bytes.toString('base64url') !== token) {
      throw foreign('its last subject token is not a key');
    }
    key = new Uint8Array(bytes);
  }
  return { key, time: Number(timeText) };
}

/** A message as a direct or leader get hands it out. */
export interface ServerMessage {
  readonly seq: number;
  readonly subject: string;
  readonly header: StoredMessage['headers'];
  readonly data: Uint8Array;
}

/** A get's message as a `StoredMessage`. */
export function storedOf(message: ServerMessage): StoredMessage {
  return { seq: message.seq, subject: message.subject, headers: message.header, data: message.data };
}

/** A consumer's message as a `StoredMessage`. */
export function jsStored(message: JsMsg): StoredMessage {
  return { seq: message.seq, subject: message.subject, headers: message.headers, data: message.data };
}

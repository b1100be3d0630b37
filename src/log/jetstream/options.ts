import type { NatsConnection } from '@nats-io/transport-node';
import type { Codec } from '../../codec/codec.js';
import { checkOptionNames } from '../open-checks.js';
import { checkConnectionOptions, serverList, type JetStreamCredentials, type JetStreamTls } from './connection.js';

// The options of `JetStreamLog.open`, what `info()` returns, and the synchronous checks of the options.

export interface JetStreamLogOptions<T> {
  /** The stream (created when missing unless `create` is false). Letters, digits, `-` and `_`. */
  readonly stream: string;
  /**
   * The NATS servers to connect to (`nats://host:port`, or `host:port`), as an array or comma separated. The log
   * owns this connection and closes it. Give this or `connection`.
   */
  readonly servers?: string | readonly string[];
  /** A connection to use instead (it stays open when the log closes). */
  readonly connection?: NatsConnection;
  /**
   * Who this client is, for servers that require it (with `servers`): user and password, token, nkey seed or a
   * creds file's content. Refused credentials fail the open with `UNAUTHORIZED`; no message holds the secret.
   */
  readonly credentials?: JetStreamCredentials;
  /** TLS to the servers (with `servers`): `true`, or the CA, client certificate and key (PEM files or text). */
  readonly tls?: JetStreamTls | true;
  /** The subject prefix of the log's messages: the stream captures `<subject>.>`. Default: the stream's name. */
  readonly subject?: string;
  readonly codec?: Codec<T>;
  /** Create the stream when it does not exist. Default `true`; ignored when read-only. */
  readonly create?: boolean;
  /** The replicas of a stream this log creates: 1, or 3 on a cluster (an acknowledged append is then on two). */
  readonly replicas?: number;
  /** Never append: `append` fails with `READ_ONLY`. Any number of such logs may follow a writer. */
  readonly readonly?: boolean;
  /** How long one publish waits for its acknowledgement before it is retried. Default 5000. */
  readonly publishTimeoutMs?: number;
  /**
   * How long appends keep being retried while the stream cannot store (an election, a lost quorum, unreachable
   * servers) before they fail with `UNAVAILABLE`. Default 60000; at most half the stream's duplicate window.
   */
  readonly retryMs?: number;
  readonly now?: () => number;
}

/** The state of a JetStream log's stream, as `JetStreamLog.info` reads it. */
export interface JetStreamLogInfo {
  readonly stream: string;
  /**
   * The records: the stream's messages less those of batches that did not (or not yet) complete, and less
   * messages Sluice did not write (another publisher's, on the stream's subjects).
   */
  readonly records: number;
  /** The stream's messages. */
  readonly messages: number;
  /** What the stream's messages take on each server, headers and subjects included. */
  readonly bytes: number;
  /** The first and last record's offsets (`since`); `-1` when the stream holds no record. */
  readonly firstOffset: number;
  readonly lastOffset: number;
  readonly replicas: number;
  /** The server that leads the stream, on a cluster. */
  readonly leader: string | undefined;
}

export const publishTimeoutMsDefault = 5000;
export const retryMsDefault = 60_000;
const streamNamePattern = /^[A-Za-z0-9_-]{1,255}$/;
const subjectPattern = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

const optionNames: ReadonlyArray<keyof JetStreamLogOptions<unknown>> = [
  'stream',
  'servers',
  'connection',
  'credentials',
  'tls',
  'subject',
  'codec',
  'create',
  'replicas',
  'readonly',
  'publishTimeoutMs',
  'retryMs',
  'now',
];

/** Throws `TypeError` / `RangeError` for options of the wrong shape (a programmer's mistake), synchronously. */
export function checkOptions(options: unknown): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  checkOptionNames(options, optionNames, 'JetStreamLog.open');
  const { stream, servers, connection, subject, replicas, publishTimeoutMs, retryMs, credentials, tls } =
    options as JetStreamLogOptions<unknown>;
  if (typeof stream !== 'string' || !streamNamePattern.test(stream)) {
    throw new TypeError('stream must be a stream name: letters, digits, - and _');
  }
  if ((servers === undefined) === (connection === undefined)) throw new TypeError('give servers or connection');
  if (servers !== undefined) {
    const bad = (server: unknown): boolean => typeof server !== 'string' || server.trim() === '';
    if ((typeof servers !== 'string' && !Array.isArray(servers)) || serverList(servers).length === 0) {
      throw new TypeError('servers must be a non-empty string or array of server URLs');
    }
    if (serverList(servers).some(bad)) throw new TypeError('servers must be a non-empty string or array of server URLs');
  } else if (credentials !== undefined || tls !== undefined) {
    throw new TypeError('credentials and tls go with servers (a given connection is already made)');
  }
  checkConnectionOptions(credentials, tls);
  if (subject !== undefined && (typeof subject !== 'string' || !subjectPattern.test(subject))) {
    throw new TypeError('subject must be dot-separated tokens of letters, digits, - and _');
  }
  if (replicas !== undefined && (!Number.isSafeInteger(replicas) || replicas < 1 || replicas > 5)) {
    throw new RangeError(`replicas must be an integer from 1 to 5, got ${String(replicas)}`);
  }
  for (const [name, value] of [
    ['publishTimeoutMs', publishTimeoutMs],
    ['retryMs', retryMs],
  ] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value <= 0)) {
      throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
    }
  }
}

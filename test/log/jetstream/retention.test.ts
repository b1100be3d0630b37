/**
 * Messages the log counted on that left the stream behind its back: purged, expired by the stream's limits,
 * deleted. Readers end (or wait for new records, live) instead of waiting for ever for messages that cannot come.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import { collect } from '../../conformance/log-suite.js';
import { track } from './cleanup.js';
import { natsFixture } from './nats-servers.js';

const nats = natsFixture(1);
let count = 0;
const streamName = (): string => `retention-${count++}`;

async function withManager<R>(use: (jsm: JetStreamManager) => Promise<R>): Promise<R> {
  const connection = await track(connect({ servers: nats.servers().urls, noAsyncTraces: true }));
  try {
    return await use(await jetstreamManager(connection));
  } finally {
    await connection.close();
  }
}

const offsets = <T>(records: readonly { offset: number; value: T }[]): [number, T][] =>
  records.map((record) => [record.offset, record.value]);

describe('JetStreamLog over removed messages', { skip: nats.skip, timeout: 120_000 }, () => {
  const open = <T = number>(stream: string, options: object = {}): Promise<JetStreamLog<T>> =>
    track(JetStreamLog.open<T>({ servers: nats.servers().urls, stream, ...options }));

  it('ends streams and info over a stream purged under the log, and a live stream goes on', async () => {
    const stream = streamName();
    await using log = await open(stream);
    await log.append([0, 1, 2]);
    await log.append(3);
    await withManager((jsm) => jsm.streams.purge(stream));
    assert.equal(log.since, 3);
    assert.deepEqual(await collect(log.stream()), []);
    assert.deepEqual(await collect(log.stream({ reverse: true })), []);
    assert.deepEqual(await collect(log.stream({ gte: 2, limit: 1 })), []);
    const info = await log.info();
    assert.deepEqual([info.records, info.messages, info.firstOffset], [0, 0, -1]);
    const live = collect(log.stream({ live: true, limit: 1 }));
    await log.append(4);
    assert.deepEqual(offsets(await live), [[4, 4]]);
  });

  it('ends streams and info when the messages at the end of the log were deleted', async () => {
    const stream = streamName();
    await using log = await open(stream);
    await log.append([0, 1]);
    await log.append(2);
    await log.append(3);
    await withManager(async (jsm) => {
      await jsm.streams.deleteMessage(stream, 3);
      await jsm.streams.deleteMessage(stream, 4);
    });
    assert.deepEqual(offsets(await collect(log.stream())), [
      [0, 0],
      [1, 1],
    ]);
    assert.deepEqual(offsets(await collect(log.stream({ gt: 0, reverse: true }))), [[1, 1]]);
    assert.equal((await log.info()).records, 2);
  });

  it('reads backwards across a purged front without a consumer per chunk down to offset 0', async () => {
    const stream = streamName();
    const connection = await track(connect({ servers: nats.servers().urls, noAsyncTraces: true }));
    await using log = await track(JetStreamLog.open<number>({ connection, stream }));
    for (let i = 0; i < 5; i++) await log.append(Array.from({ length: 1000 }, (_, j) => i * 1000 + j));
    await withManager((jsm) => jsm.streams.purge(stream, { keep: 3 }));
    let consumers = 0;
    const request = connection.request.bind(connection);
    (connection as { request: NatsConnection['request'] }).request = (subject, ...rest) => {
      if (subject.startsWith('$JS.API.CONSUMER.CREATE')) consumers++;
      return request(subject, ...rest);
    };
    const newest = await collect(log.stream({ reverse: true, limit: 4 }));
    assert.deepEqual(offsets(newest), [
      [4999, 4999],
      [4998, 4998],
      [4997, 4997],
    ]);
    assert.ok(consumers <= 4, `${consumers} consumers for 3 records`);
  });
});

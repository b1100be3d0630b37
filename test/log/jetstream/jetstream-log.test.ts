import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { open as openLmdb, type Key } from 'lmdb';
import { join } from 'node:path';
import { Sluice } from '../../../src/db/sluice.js';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import { index } from '../../../src/views/index-view.js';
import { orderedBinaryKeys } from '../../../src/views/lmdb-store.js';
import { temporaryDirectory } from '../../helpers.js';
import { collect, rejectsWith } from '../../conformance/log-suite.js';
import { track } from './cleanup.js';
import { freePort, natsFixture } from './nats-servers.js';

const nats = natsFixture(1);
let count = 0;
const streamName = (): string => `log-${count++}`;

async function withConnection<R>(use: (connection: NatsConnection) => Promise<R>): Promise<R> {
  const connection = await track(connect({ servers: nats.servers().urls, noAsyncTraces: true }));
  try {
    return await use(connection);
  } finally {
    await connection.close();
  }
}

describe('JetStreamLog', { skip: nats.skip, timeout: 120_000 }, () => {
  const open = <T = unknown>(stream: string, options: object = {}): Promise<JetStreamLog<T>> =>
    track(JetStreamLog.open<T>({ servers: nats.servers().urls, stream, ...options }));

  it('maps stream sequence s to offset s - 1, with the key in the subject and the time in a header', async () => {
    const stream = streamName();
    await using log = await open(stream);
    const long = 'k'.repeat(200);
    assert.deepEqual(await log.append(['a', 'b', 'c'], { key: [undefined, 'key-1', long], time: [10, 20, 30] }), [0, 1, 2]);
    const stored = await withConnection(async (connection) => {
      const jsm = await jetstreamManager(connection);
      return Promise.all([1, 2, 3].map((seq) => jsm.streams.getMessage(stream, { seq })));
    });
    assert.deepEqual(
      stored.map((message) => [message?.subject, message?.header.get('Sluice-Time')]),
      [
        [`${stream}._`, '10'],
        [`${stream}.${Buffer.from('key-1').toString('base64url')}`, '20'],
        [stored[2]?.subject, '30'],
      ],
    );
    assert.match(stored[2]?.subject ?? '', new RegExp(`^${stream}\\.~[A-Za-z0-9_-]{43}$`));
    const record = await log.getRecord(2);
    assert.equal(Buffer.from(record.key ?? []).toString(), long);
    assert.equal(record.time, 30);
  });

  it('fails to open a missing stream with LOG_NOT_FOUND when it may not create it', async () => {
    await rejectsWith(open(streamName(), { create: false }), 'LOG_NOT_FOUND');
    await rejectsWith(open(streamName(), { readonly: true }), 'LOG_NOT_FOUND');
  });

  it('fails with UNAVAILABLE when no server answers', async () => {
    const port = await freePort();
    await rejectsWith(JetStreamLog.open({ servers: `127.0.0.1:${port}`, stream: 'nowhere' }), 'UNAVAILABLE');
  });

  it('throws TypeError and RangeError for wrong options, synchronously', () => {
    assert.throws(() => JetStreamLog.open({ stream: 'a.b', servers: 'x' }), TypeError);
    assert.throws(() => JetStreamLog.open({ stream: 'ok' }), TypeError);
    assert.throws(() => JetStreamLog.open({ stream: 'ok', servers: '' }), TypeError);
    assert.throws(() => JetStreamLog.open({ stream: 'ok', servers: 'x', subject: 'a.>' }), TypeError);
    assert.throws(() => JetStreamLog.open({ stream: 'ok', servers: 'x', replicas: 0 }), RangeError);
    assert.throws(() => JetStreamLog.open({ stream: 'ok', servers: 'x', retryMs: -5 }), RangeError);
    assert.throws(() => JetStreamLog.open({ stream: 'ok', servers: 'x', readOnly: true } as never), /no option readOnly \(did you mean readonly\?\)/);
  });

  it('refuses a stream that is not a Sluice log with NOT_A_LOG', async () => {
    const foreign = streamName();
    const elsewhere = streamName();
    await withConnection(async (connection) => {
      const jsm = await jetstreamManager(connection);
      await jsm.streams.add({ name: foreign, subjects: [`${foreign}.>`] });
      await jetstream(connection).publish(`${foreign}.orders`, 'not a record');
      await jsm.streams.add({ name: elsewhere, subjects: ['somewhere.else'] });
    });
    await rejectsWith(open(foreign), 'NOT_A_LOG');
    await rejectsWith(open(elsewhere), 'NOT_A_LOG');
  });

  it('reports a foreign message among the records as FOREIGN_MESSAGE, never skipping it', async () => {
    const stream = streamName();
    await using log = await open(stream);
    await log.append(['before']);
    await withConnection(async (connection) => {
      const js = jetstream(connection);
      await js.publish(`${stream}._`, 'no time header');
      const wrongKey = headers();
      wrongKey.set('Sluice-Time', '1');
      await js.publish(`${stream}.not+base64`, 'bad key token', { headers: wrongKey });
    });
    await log.append('after');
    await rejectsWith(log.get(1), 'FOREIGN_MESSAGE');
    await rejectsWith(log.get(2), 'FOREIGN_MESSAGE');
    assert.equal(await log.get(3), 'after');
    const info = await log.info();
    assert.deepEqual([info.records, info.messages, info.firstOffset, info.lastOffset], [2, 4, 0, 3]);
    const seen: unknown[] = [];
    await rejectsWith(
      (async () => {
        for await (const record of log.stream()) seen.push(record.value);
      })(),
      'FOREIGN_MESSAGE',
    );
    assert.deepEqual(seen, ['before']);
  });

  it('skips messages removed behind its back: deleted last messages, a purged front, a purged stream', async () => {
    const stream = streamName();
    await using log = await open<number>(stream);
    for (let i = 0; i < 8; i++) await log.append(i);
    // A batch whose last message goes can never complete; the single records after it go too.
    await log.append([8, 9, 10]);
    await log.append(11);
    const values = async (options: object = {}): Promise<number[]> =>
      (await collect(log.stream(options))).map((record) => record.value);
    const info = (): Promise<{ records: number; firstOffset: number; lastOffset: number }> => log.info();
    await withConnection(async (connection) => {
      const jsm = await jetstreamManager(connection);
      for (const seq of [12, 11, 6]) await jsm.streams.deleteMessage(stream, seq);
      // Streams and info() wait for messages 8..12 at first (the stream still says its last is 12): the state of
      // the stream tells them these are gone.
      assert.deepEqual(await values(), [0, 1, 2, 3, 4, 6, 7]);
      assert.deepEqual(await values({ reverse: true }), [7, 6, 4, 3, 2, 1, 0]);
      assert.deepEqual(await values({ gte: 8 }), []);
      assert.equal((await info()).records, 7);
      await rejectsWith(log.get(10), 'RECORD_DELETED');
      await jsm.streams.purge(stream, { seq: 4 });
      assert.deepEqual(await values(), [3, 4, 6, 7]);
      assert.deepEqual(await values({ reverse: true, limit: 10 }), [7, 6, 4, 3]);
      await rejectsWith(log.get(1), 'OFFSET_OUT_OF_RANGE');
      const purgedFront = await info();
      assert.deepEqual([purgedFront.records, purgedFront.firstOffset], [4, 3]);
      await jsm.streams.purge(stream);
      assert.deepEqual(await values(), []);
      assert.deepEqual(await values({ reverse: true }), []);
      assert.equal((await info()).records, 0);
    });
    // Appends go on after the removed messages, and a live stream from the start sees them.
    const live = collect(log.stream({ live: true, limit: 2 }));
    assert.equal(await log.append(12), 12);
    assert.equal(await log.append(13), 13);
    assert.deepEqual((await live).map((record) => record.value), [12, 13]);
  });

  it('tells views of a purge: an index drops the entries of the purged records', async () => {
    const stream = streamName();
    const dir = temporaryDirectory();
    const log = await open<number>(stream);
    const db = await Sluice.open<number>(dir, { log, views: { byN: index<number>(1, (n) => n) } });
    await db.append([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await db.ready();
    await withConnection(async (connection) => (await jetstreamManager(connection)).streams.purge(stream, { seq: 6 }));
    assert.equal(await db.append(10), 10);
    await db.ready();
    assert.equal(log.firstOffset, 5);
    await db.close();
    await log.close();
    const root = openLmdb({ path: join(dir, 'views', 'byN', 'index.mdb'), readOnly: true });
    try {
      const entries = root.openDB<number, Key>({ name: 'entries', encoding: 'ordered-binary', ...orderedBinaryKeys });
      assert.deepEqual([...entries.getRange({})].map(({ value }) => value), [5, 6, 7, 8, 9, 10]);
    } finally {
      await root.close();
    }
  });

  it('lets two writers share a stream: each keeps its order, no record is lost or doubled', async () => {
    const stream = streamName();
    await using first = await open<string>(stream);
    await using second = await open<string>(stream);
    const offsets: number[] = [];
    // Rounds, so that both writers start from a stale end of the stream again and again.
    for (let round = 0; round < 3; round++) {
      const appends: Promise<number | number[]>[] = [];
      for (let i = round * 100; i < (round + 1) * 100; i++) {
        appends.push(first.append(`first ${i}`));
        appends.push(i % 10 === 0 ? second.append([`second ${i}`, `second ${i}+`]) : second.append(`second ${i}`));
      }
      offsets.push(...(await Promise.all(appends)).flat());
    }
    assert.equal(new Set(offsets).size, offsets.length);
    const values = (await collect(first.stream())).map((record) => record.value);
    assert.equal(values.length, offsets.length);
    const order = (writer: string): string[] => values.filter((value) => value.startsWith(writer));
    assert.deepEqual(order('first'), Array.from({ length: 300 }, (_, i) => `first ${i}`));
    assert.deepEqual(
      order('second'),
      Array.from({ length: 300 }, (_, i) => (i % 10 === 0 ? [`second ${i}`, `second ${i}+`] : [`second ${i}`])).flat(),
    );
    assert.deepEqual((await collect(second.stream())).map((record) => record.value), values);
  });

  it('follows another writer: a read-only log sees its records through subscribe, live streams and get', async () => {
    const stream = streamName();
    await using writer = await open<number>(stream);
    await writer.append([0, 1]);
    await using reader = await open<number>(stream, { readonly: true });
    assert.equal(reader.since, 1);
    await rejectsWith(reader.append(2), 'READ_ONLY');
    await rejectsWith(reader.append([]), 'READ_ONLY');
    const notified = new Promise<void>((resolve) => {
      const unsubscribe = reader.subscribe((since) => {
        if (since < 4) return;
        unsubscribe();
        resolve();
      });
    });
    const live = collect(reader.stream({ live: true, limit: 5 }));
    await writer.append([2, 3, 4]);
    await notified;
    assert.deepEqual((await live).map((record) => record.value), [0, 1, 2, 3, 4]);
    const offset = await writer.append(5);
    assert.equal(await reader.get(offset), 5);
  });

  it('goes on appending, in order, after the server restarts', async () => {
    const stream = streamName();
    await using log = await open<number>(stream, { publishTimeoutMs: 1000 });
    await log.append([0, 1, 2]);
    const node = nats.servers().nodes[0];
    assert.ok(node !== undefined);
    await node.stop();
    const during = log.append([3, 4]);
    node.start();
    await node.ready();
    assert.deepEqual(await during, [3, 4]);
    assert.equal(await log.append(5), 5);
    assert.deepEqual((await collect(log.stream())).map((record) => record.value), [0, 1, 2, 3, 4, 5]);
  });

  it('ends streams waiting on stopped servers at once: ABORTED by their signal, LOG_CLOSED by close', async () => {
    const stream = streamName();
    const log = await open<number>(stream, { retryMs: 5000, publishTimeoutMs: 500 });
    await log.append([0, 1, 2]);
    const node = nats.servers().nodes[0];
    assert.ok(node !== undefined);
    await node.stop();
    try {
      const settled: string[] = [];
      const controller = new AbortController();
      const aborted = collect(log.stream({ signal: controller.signal }));
      const closed = collect(log.stream()).finally(() => settled.push('stream'));
      const appending = log.append(3).finally(() => settled.push('append'));
      // Both streams are now waiting for a consumer the stopped server cannot create.
      await new Promise((resolve) => setTimeout(resolve, 200));
      controller.abort();
      await rejectsWith(aborted, 'ABORTED');
      const closing = log.close();
      await rejectsWith(closed, 'LOG_CLOSED');
      // The append still had its chance: close waits for it, and it fails only once the servers stayed away.
      await rejectsWith(appending, 'UNAVAILABLE');
      await closing;
      assert.deepEqual(settled, ['stream', 'append']);
    } finally {
      await log.close();
      node.start();
      await node.ready();
    }
  });
});

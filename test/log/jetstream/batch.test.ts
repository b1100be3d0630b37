/**
 * Atomic batches on JetStream (FORMAT.md J-10…J-16): the batch rule on its own (`BatchAssembler`), then every
 * reader of a real stream facing a batch whose writer stopped half-way (its messages published here by hand, as
 * a writer that died would have left them) and a batch still being written.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { BatchAssembler, batchHeaderValue, batchPartOf } from '../../../src/log/jetstream/batch.js';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import { collect, rejectsWith } from '../../conformance/log-suite.js';
import { track } from './cleanup.js';
import { natsFixture } from './nats-servers.js';

interface Message {
  readonly seq: number;
  readonly headers: MsgHdrs | undefined;
}

function part(seq: number, index: number, count: number, id: string): Message {
  const h = headers();
  h.set('Sluice-Batch', batchHeaderValue({ index, count, id }));
  return { seq, headers: h };
}

const single = (seq: number): Message => ({ seq, headers: undefined });

/** The sequences `push` releases for each message, in order. */
function released(messages: readonly Message[]): number[][] {
  const batches = new BatchAssembler<Message>();
  return messages.map((message) => batches.push(message).map((record) => record.seq));
}

describe('the batch rule', () => {
  it('releases a batch at its last message, a single record at once', () => {
    assert.deepEqual(
      released([single(1), part(2, 0, 3, 'w.2'), part(3, 1, 3, 'w.2'), part(4, 2, 3, 'w.2'), single(5)]),
      [[1], [], [], [2, 3, 4], [5]],
    );
  });

  it('drops a batch that another message interrupts, whatever comes after', () => {
    assert.deepEqual(released([part(1, 0, 3, 'a.1'), part(2, 1, 3, 'a.1'), single(3), single(4)]), [[], [], [3], [4]]);
    // Another batch's first message interrupts too; that batch completes on its own.
    assert.deepEqual(
      released([part(1, 0, 2, 'a.1'), part(2, 0, 2, 'b.2'), part(3, 1, 2, 'b.2')]),
      [[], [], [2, 3]],
    );
    // A message of another batch id is no continuation (a last message is a record by itself: J-13).
    assert.deepEqual(released([part(1, 0, 3, 'a.1'), part(2, 1, 3, 'c.1'), part(3, 2, 3, 'c.1')]), [[], [], [2, 3]]);
  });

  it('starts in the middle of a batch and over a gap (a deleted message)', () => {
    assert.deepEqual(released([part(11, 1, 3, 'a.10'), part(12, 2, 3, 'a.10')]), [[], [11, 12]]);
    assert.deepEqual(released([part(10, 0, 3, 'a.10'), part(12, 2, 3, 'a.10')]), [[], [10, 12]]);
  });

  it('parses only well-formed headers', () => {
    const bad = (value: string): unknown => {
      const h = headers();
      h.set('Sluice-Batch', value);
      return batchPartOf(h);
    };
    assert.deepEqual(bad('1/3/w.7'), { index: 1, count: 3, id: 'w.7' });
    for (const value of ['3/3/w', '0/1/w', '01/3/w', '1/3/', '1/3/a b', 'x', '-1/3/w', '1/3/w/x']) {
      assert.equal(bad(value), null, value);
    }
    assert.equal(batchPartOf(undefined), undefined);
  });
});

const nats = natsFixture(1);
let count = 0;

async function withConnection<R>(use: (connection: NatsConnection) => Promise<R>): Promise<R> {
  const connection = await track(connect({ servers: nats.servers().urls, noAsyncTraces: true }));
  try {
    return await use(connection);
  } finally {
    await connection.close();
  }
}

/** Publishes, as a writer of `stream` would, the message of `value` with the batch header `index/count/id`. */
async function publishPart(stream: string, value: string, index: number, total: number, id: string): Promise<number> {
  return withConnection(async (connection) => {
    const h = headers();
    h.set('Sluice-Time', '1000');
    h.set('Sluice-Batch', batchHeaderValue({ index, count: total, id }));
    const ack = await jetstream(connection).publish(`${stream}._`, JSON.stringify(value), { headers: h });
    return ack.seq;
  });
}

async function lastSequence(stream: string): Promise<number> {
  return withConnection(async (connection) => (await (await jetstreamManager(connection)).streams.info(stream)).state.last_seq);
}

describe('JetStreamLog batches', { skip: nats.skip, timeout: 120_000 }, () => {
  const open = <T = string>(stream: string, options: object = {}): Promise<JetStreamLog<T>> =>
    track(JetStreamLog.open<T>({ servers: nats.servers().urls, stream, ...options }));

  it('stores a batch with Sluice-Batch headers and a single record without', async () => {
    const stream = `batch-${count++}`;
    await using log = await open(stream);
    assert.equal(await log.append('one'), 0);
    assert.deepEqual(await log.append(['a', 'b']), [1, 2]);
    const stored = await withConnection(async (connection) => {
      const jsm = await jetstreamManager(connection);
      return Promise.all([1, 2, 3].map((seq) => jsm.streams.getMessage(stream, { seq })));
    });
    const id = stored[1]?.header.get('Nats-Msg-Id');
    assert.deepEqual(
      stored.map((message) => (message?.header.has('Sluice-Batch') === true ? message.header.get('Sluice-Batch') : null)),
      [null, `0/2/${id}`, `1/2/${id}`],
    );
  });

  it('skips a batch its writer abandoned half-way, in every reader, for ever', async () => {
    const stream = `batch-${count++}`;
    await using writer = await open(stream);
    await writer.append('before');
    // A writer that died after two of its three messages.
    await publishPart(stream, 'lost 0', 0, 3, 'dead.2');
    await publishPart(stream, 'lost 1', 1, 3, 'dead.2');
    await using reader = await open(stream, { readonly: true });
    assert.equal(reader.since, 0, 'since stops before the unfinished batch');
    await rejectsWith(reader.get(1), 'OFFSET_OUT_OF_RANGE');
    const live = collect(reader.stream({ live: true, limit: 3 }));

    // The next append (this log's writer knows nothing of the other) lands after it: the batch can never end.
    assert.equal(await writer.append('after'), 3);
    assert.deepEqual(await writer.append(['x', 'y']), [4, 5]);
    await using fresh = await open(stream, { readonly: true });
    for (const log of [writer, reader, fresh]) {
      await rejectsWith(log.get(1), 'NOT_A_RECORD');
      await rejectsWith(log.get(2), 'NOT_A_RECORD');
      assert.equal(await log.get(3), 'after');
      const records = (await collect(log.stream())).map((record) => [record.offset, record.value]);
      assert.deepEqual(records, [
        [0, 'before'],
        [3, 'after'],
        [4, 'x'],
        [5, 'y'],
      ]);
      assert.deepEqual((await collect(log.stream({ reverse: true }))).map((record) => [record.offset, record.value]), [
        ...records,
      ].reverse());
      assert.deepEqual((await collect(log.stream({ gte: 2, lte: 4 }))).map((record) => record.offset), [3, 4]);
      assert.deepEqual((await collect(log.stream({ lt: 3, reverse: true }))).map((record) => record.offset), [0]);
    }
    assert.deepEqual((await live).map((record) => record.value), ['before', 'after', 'x']);
    const info = await reader.info();
    assert.deepEqual([info.records, info.messages, info.firstOffset, info.lastOffset], [4, 6, 0, 5]);
    await writer.close();
    // A new writer opening on a stream that ends with an abandoned batch appends after it.
    await publishPart(stream, 'lost again', 0, 2, 'dead.7');
    await using again = await open(stream);
    assert.equal(again.since, 5);
    assert.equal(await again.append('last'), 7);
    assert.deepEqual((await collect(again.stream({ gt: 5 }))).map((record) => record.value), ['last']);
  });

  it('shows a batch being written to no reader before its last message is stored', async () => {
    const stream = `batch-${count++}`;
    await using writer = await open(stream);
    await writer.append('first');
    await using reader = await open(stream, { readonly: true });
    const seen: [string, number][] = [];
    const live = (async () => {
      for await (const record of reader.stream({ live: true, limit: 4 })) {
        // When a record of the batch shows, its last message must already be in the stream.
        seen.push([record.value, await lastSequence(stream)]);
      }
    })();
    await publishPart(stream, 'b0', 0, 3, 'slow.2');
    await publishPart(stream, 'b1', 1, 3, 'slow.2');
    // Readers asking the server meanwhile see the log as it was before the batch.
    assert.deepEqual((await collect(reader.stream())).map((record) => record.value), ['first']);
    await rejectsWith(reader.get(1), 'OFFSET_OUT_OF_RANGE');
    assert.equal((await reader.info()).records, 1);
    await publishPart(stream, 'b2', 2, 3, 'slow.2');
    await live;
    assert.deepEqual(seen.map(([value]) => value), ['first', 'b0', 'b1', 'b2']);
    for (const [value, last] of seen.slice(1)) assert.equal(last, 4, `${value} showed before the batch was whole`);
    assert.equal(await reader.get(1), 'b0');
    assert.equal(reader.since, 3);
  });
});

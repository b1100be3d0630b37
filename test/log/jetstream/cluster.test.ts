import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import { collect, rejectsWith } from '../../conformance/log-suite.js';
import { temporaryDirectory } from '../../helpers.js';
import { track } from './cleanup.js';
import { natsFixture, type NatsServers } from './nats-servers.js';
import { addTotals, initialTotals, openDatabase, runProcess } from './sluice-process.js';

const nats = natsFixture(3);

/** The name of the server that leads `stream`, once one does (asked of the servers that run). */
async function leaderOf(servers: NatsServers, stream: string): Promise<string> {
  const running = servers.nodes.filter((node) => node.pid !== undefined).map((node) => node.url);
  const connection = await track(connect({ servers: running, noAsyncTraces: true }));
  try {
    // No API check: it is one more request that an election in progress can time out.
    const jsm = await jetstreamManager(connection, { checkAPI: false });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const leader = (await jsm.streams.info(stream).catch(() => undefined))?.cluster?.leader;
      if (leader !== undefined && leader !== '') return leader;
      assert.ok(Date.now() < deadline, `stream ${stream} has no leader`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await connection.close();
  }
}

/** Polls `condition` every 50 ms; fails with `what` when it is still false after `timeoutMs`. */
async function waitUntil(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** `promise`, or a failure naming `what` once `timeoutMs` passed (the timer is cleared, never left behind). */
async function within<T>(promise: Promise<T>, what: string, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

// A bound on each test: an election that never settles must fail the run, not hang it past CI's time.
describe('JetStreamLog on a three-node cluster, three replicas', { skip: nats.skip, timeout: 180_000 }, () => {
  it('loses nothing when the stream leader is killed: appends resume, every record once, in order', async () => {
    const servers = nats.servers();
    const root = temporaryDirectory();
    const stream = 'failover';
    const total = 2000;
    const log = await track(
      JetStreamLog.open<{ by: string; n: number }>({
        servers: servers.urls,
        stream,
        replicas: 3,
        publishTimeoutMs: 2000,
      }),
    );
    const task = { servers: servers.urls, stream, by: 'a', append: [], records: total };
    const { db, totals } = await openDatabase({ ...task, dir: join(root, 'writer') }, log);
    // Bounded well inside the test's own limit, so a stuck follower fails with where it stopped.
    const follower = runProcess({ ...task, by: 'b', dir: join(root, 'follower') }, 100_000);
    await follower.opened;
    const leader = servers.node(await leaderOf(servers, stream));
    const appended: number[] = [];
    try {
      // A window of appends in flight, as a busy writer has; the leader dies half-way.
      const inFlightMax = 100;
      const inFlight = new Set<Promise<void>>();
      for (let n = 0; n < total; n++) {
        if (n === total / 2) await leader.stop('SIGKILL');
        const append = db.append({ by: 'a', n }).then((offset) => {
          appended[n] = offset;
          inFlight.delete(append);
        });
        inFlight.add(append);
        if (inFlight.size >= inFlightMax) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      assert.notEqual(await leaderOf(servers, stream), leader.name);
      leader.start();
      await leader.ready();

      // One writer: offset n holds value n, and nothing else is in the stream.
      assert.deepEqual(appended, Array.from({ length: total }, (_, n) => n));
      const report = await follower.report;
      assert.deepEqual(report.seen, Array.from({ length: total }, (_, n) => [n, 'a', n]));
      const expected = Array.from({ length: total }, (_, n) => ({ by: 'a', n })).reduce(addTotals, initialTotals);
      assert.deepEqual(await within(totals.get(), "the writer's view to take in every record", 30_000), expected);
      assert.deepEqual(report.totals, expected);
    } finally {
      follower.kill();
      await db.close();
    }
    // Read back through the restarted server alone: it caught up with what it missed.
    await using again = await track(JetStreamLog.open<{ n: number }>({ servers: leader.url, stream, readonly: true }));
    assert.equal(again.since, total - 1);
    assert.deepEqual(
      (await within(collect(again.stream()), 'the restarted server to stream every record', 30_000)).map(
        (record) => record.value.n,
      ),
      Array.from({ length: total }, (_, n) => n),
    );
  });

  it('a live reader goes on when the server holding its consumer dies, before that server returns', async () => {
    const servers = nats.servers();
    const stream = 'consumer-host';
    await using writer = await track(
      JetStreamLog.open<number>({ servers: servers.urls, stream, replicas: 3, publishTimeoutMs: 2000 }),
    );
    for (let n = 0; n < 10; n++) await writer.append(n);
    await using reader = await track(JetStreamLog.open<number>({ servers: servers.urls, stream, readonly: true }));
    const seen: number[] = [];
    const reading = (async () => {
      for await (const record of reader.stream({ live: true, limit: 20 })) seen.push(record.value);
    })();
    reading.catch(() => undefined);
    await waitUntil(() => seen.length === 10, 'the reader to see the first 10 records', 20_000);
    // The server of the reader's own consumer (not the headers-only one that follows the stream's end).
    const connection = await track(connect({ servers: servers.urls, noAsyncTraces: true }));
    const jsm = await jetstreamManager(connection, { checkAPI: false });
    const consumers = await jsm.consumers.list(stream).next();
    await connection.close();
    const host = consumers.find((consumer) => consumer.config.headers_only !== true)?.cluster?.leader;
    assert.ok(host !== undefined && host !== '', `no consumer host among ${JSON.stringify(consumers)}`);
    const node = servers.node(host);
    await node.stop('SIGKILL');
    try {
      for (let n = 10; n < 20; n++) await writer.append(n);
      // Without a new consumer the reader would wait for the dead server for ever.
      await waitUntil(() => seen.length === 20, `the reader to see 20 records with ${host} down`, 45_000);
      await reading;
      assert.deepEqual(seen, Array.from({ length: 20 }, (_, n) => n));
    } finally {
      node.start();
      await node.ready();
    }
  });

  it('fails appends with UNAVAILABLE once two of three servers are down for longer than retryMs', async () => {
    const servers = nats.servers();
    await using log = await track(
      JetStreamLog.open<number>({
        servers: servers.urls,
        stream: 'quorum',
        replicas: 3,
        publishTimeoutMs: 500,
        retryMs: 1500,
      }),
    );
    assert.equal(await log.append(1), 0);
    const [first, second] = servers.nodes;
    assert.ok(first !== undefined && second !== undefined);
    await Promise.all([first.stop('SIGKILL'), second.stop('SIGKILL')]);
    await rejectsWith(log.append(2), 'UNAVAILABLE');
    // Sticky: the writer no longer knows the end of the stream; reopening finds it.
    await rejectsWith(log.append(3), 'UNAVAILABLE');
  });
});

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isSluiceError, type ErrorCode } from '../../src/errors.js';
import { Flume, type FlumeDB, type Mapper } from '../../src/flume/flume.js';
import { fromLog, type FlumeItem } from '../../src/flume/flumelog.js';
import { LiveReaders } from '../../src/flume/live-readers.js';
import { MemoryLog } from '../../src/flume/logs.js';
import type { PullSource } from '../../src/flume/pull.js';
import { viewRestartsMax } from '../../src/limits.js';
import { MemoryLog as SluiceMemoryLog } from '../../src/log/memory/memory-log.js';
import { temporaryDirectory } from '../helpers.js';
import {
  call,
  collect,
  json,
  logCases,
  probe,
  pull,
  settle,
  UpstreamFlume,
  UpstreamOffsetLog,
  type Probe,
} from './support.js';

function memoryDb(isReady?: boolean, mapper?: Mapper<unknown>): FlumeDB<unknown> {
  return Flume(MemoryLog({ codec: json }), isReady, mapper);
}

function append(db: FlumeDB<unknown>, value: unknown): Promise<number> {
  return call<number>((cb) => db.append(value, cb));
}

type Get = (...args: unknown[]) => void;
type Read = (options?: unknown) => PullSource<unknown>;

/** The probe's methods as mounted on the database. */
function probeApi(db: FlumeDB<unknown>, name: string): { get: Get; read: Read; peek: () => number } {
  const view = db.views[name];
  assert.ok(view !== undefined, `no view ${name}`);
  return view as unknown as { get: Get; read: Read; peek: () => number };
}

/** Calls the mounted view's async `get` with `options` and resolves to its answer. */
function viewGet(db: FlumeDB<unknown>, name: string, options?: unknown): Promise<number> {
  const { get } = probeApi(db, name);
  return call<number>((cb) => (options === undefined ? get(cb) : get(options, cb)));
}

function close(db: FlumeDB<unknown>): Promise<void> {
  return call((cb) => db.close(cb));
}

function isCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => (error as { code?: unknown }).code === code;
}

async function withProbe(options: Parameters<typeof probe>[0] = {}): Promise<{ db: FlumeDB<unknown>; p: Probe }> {
  const db = memoryDb();
  const p = probe(options);
  db.use('p', p.create);
  await settle();
  return { db, p };
}

describe('Flume: the log API', () => {
  it('appends a value, an array as one batch, and reads them back', async () => {
    const db = memoryDb();
    assert.equal(db.since.value, -1, 'an empty log');
    const first = await append(db, { n: 1 });
    assert.equal(first, 0);
    assert.equal(db.since.value, first);
    const last = await append(db, [{ n: 2 }, { n: 3 }]);
    const items = await collect<FlumeItem<unknown>>(db.stream());
    assert.deepEqual(
      items.map((item) => item.value),
      [{ n: 1 }, { n: 2 }, { n: 3 }],
    );
    assert.equal(last, items[2]?.seq, 'a batch calls back with the seq of its last record');
    assert.equal(db.since.value, last, 'since is the seq of the last record');
    assert.deepEqual(await call((cb) => db.get(items[1]?.seq as number, cb)), { n: 2 });
    await close(db);
  });

  it('gives each of several overlapping appends its own seq, and moves since before calling back', async () => {
    const db = memoryDb();
    const sinceAtCallback: number[] = [];
    // Three appends in one turn: upstream merged them and called all three back with the last record's seq.
    const seqs = await Promise.all(
      [1, 2, 3].map(
        (n) =>
          new Promise<number>((resolve, reject) =>
            db.append(n, (error, seq) => {
              if (error) return reject(error);
              sinceAtCallback.push(db.since.value as number);
              resolve(seq as number);
            }),
          ),
      ),
    );
    const streamed = await collect<number>(db.stream({ values: false }));
    assert.deepEqual(seqs, streamed, 'each callback got its own record');
    sinceAtCallback.forEach((since, i) => assert.ok(since >= (seqs[i] as number), 'since moved before the callback'));
    await close(db);
  });

  it('has since undefined while the log loads, then -1 for an empty log', async () => {
    let open: (log: SluiceMemoryLog<unknown>) => void = () => undefined;
    const db = Flume(fromLog(new Promise<SluiceMemoryLog<unknown>>((resolve) => (open = resolve))));
    assert.equal(db.since.value, undefined);
    const seen: number[] = [];
    db.since((value) => seen.push(value));
    const appended = append(db, 'early');
    const streamed = collect(db.stream({ seqs: false }));
    open(new SluiceMemoryLog<unknown>());
    assert.equal(await appended, 0, 'an append made while loading waits for the log');
    assert.deepEqual(await streamed, ['early'], 'so does a stream, opened after it');
    assert.equal(await call((cb) => db.get(0, cb)), 'early');
    assert.deepEqual(seen, [-1, 0]);
    await close(db);
  });

  it('takes a Sluice log, or a promise of one, as its log', async () => {
    const log = new SluiceMemoryLog<unknown>();
    const direct = Flume(log);
    assert.equal(direct.dir, null, 'a log without a directory');
    assert.equal(await append(direct, 'x'), 0);
    assert.equal(log.since, 0);
    await close(direct);
    assert.equal(log.status, 'closed', 'closing the database closes the log');
    const promised = Flume(SluiceMemoryLog.open<unknown>());
    assert.equal(promised.since.value, undefined);
    assert.equal(await append(promised, 'y'), 0);
    await close(promised);
    assert.throws(() => Flume({} as never), TypeError);
    assert.throws(() => Flume(log, 'yes' as never), TypeError);
  });

  it('streams with every option', async () => {
    const db = memoryDb();
    for (const n of [0, 1, 2, 3, 4]) await append(db, n);
    const seqs = await collect<number>(db.stream({ values: false }));
    const at = (i: number): number => seqs[i] as number;
    const values = (options: object): Promise<unknown[]> => collect(db.stream({ ...options, seqs: false }));
    assert.deepEqual(await values({}), [0, 1, 2, 3, 4]);
    assert.deepEqual(await values({ gt: at(1) }), [2, 3, 4]);
    assert.deepEqual(await values({ gte: at(1) }), [1, 2, 3, 4]);
    assert.deepEqual(await values({ lt: at(3) }), [0, 1, 2]);
    assert.deepEqual(await values({ lte: at(3) }), [0, 1, 2, 3]);
    assert.deepEqual(await values({ gt: at(0), lte: at(3), reverse: true }), [3, 2, 1]);
    assert.deepEqual(await values({ limit: 2 }), [0, 1]);
    assert.deepEqual(await values({ limit: 2, reverse: true }), [4, 3]);
    assert.deepEqual(await values({ limit: 0 }), [0, 1, 2, 3, 4], 'limit 0 means no limit, as upstream');
    assert.deepEqual(await values({ gt: -1, lt: null }), [0, 1, 2, 3, 4], 'null bounds are absent');
    assert.deepEqual(await collect(db.stream({ gte: at(4) })), [{ seq: at(4), value: 4 }]);
    assert.deepEqual(await collect(db.stream({ gte: at(4), values: false })), [at(4)]);
    assert.deepEqual(await collect(db.stream({ gt: at(4) })), []);
    assert.throws(() => db.stream({ live: true, reverse: true }), TypeError);
    assert.throws(() => db.stream({ gt: 1, gte: 1 }), TypeError);
    assert.throws(() => db.stream({ gt: 'x' } as never), TypeError);
    assert.throws(() => db.stream({ limit: 1.5 }), RangeError);
    await close(db);
  });

  it('streams live: old records then new ones; with old: false only new ones', async () => {
    const db = memoryDb();
    await append(db, 'a');
    const take = (source: unknown, count: number): Promise<unknown[]> =>
      new Promise((resolve) => {
        const got: unknown[] = [];
        const op = (value: unknown): boolean => got.push(value) < count;
        pull(source, pull.drain(op, () => resolve(got)));
      });
    const live = take(db.stream({ live: true, seqs: false }), 3);
    const onlyNew = take(db.stream({ old: false, seqs: false }), 2);
    await settle();
    await append(db, 'b');
    await append(db, 'c');
    assert.deepEqual(await live, ['a', 'b', 'c']);
    assert.deepEqual(await onlyNew, ['b', 'c']);
    await close(db);
  });

  it('streams old: false on an empty log (where flumelog-offset crashes)', async () => {
    const db = memoryDb();
    const got = new Promise<unknown[]>((resolve) => {
      const values: unknown[] = [];
      pull(
        db.stream({ old: false, live: true, seqs: false }),
        pull.drain((value: unknown) => values.push(value) < 2, () => resolve(values)),
      );
    });
    await settle();
    await append(db, 'first');
    await append(db, 'second');
    assert.deepEqual(await got, ['first', 'second']);
    await close(db);
  });

  it('streams old: false from its first read: an append made right after it is included', async () => {
    const db = memoryDb();
    await append(db, 'before');
    const got = new Promise<unknown[]>((resolve) => {
      const values: unknown[] = [];
      pull(
        db.stream({ old: false, live: true, seqs: false }),
        pull.drain((value: unknown) => values.push(value) < 2, () => resolve(values)),
      );
    });
    // Appended in the same turn as the first read, before the stream had a chance to open.
    await call((cb) => db.append(['x', 'y'], cb));
    assert.deepEqual(await got, ['x', 'y']);
    await close(db);
  });

  it('applies the mapper to get, to every stream shape, and to what views see', async () => {
    const double: Mapper<unknown> = (value, cb) => setImmediate(() => cb(null, (value as number) * 2));
    const db = memoryDb(true, double);
    const p = probe();
    db.use('p', p.create);
    const seq = await append(db, 21);
    await append(db, 1);
    assert.equal(await call((cb) => db.get(seq, cb)), 42);
    assert.deepEqual(await collect(db.stream({ seqs: false })), [42, 2]);
    assert.deepEqual(await collect(db.stream({ limit: 1 })), [{ seq, value: 42 }]);
    assert.deepEqual(await collect(db.stream({ values: false, limit: 1 })), [seq], 'a bare seq is not mapped');
    assert.equal(await viewGet(db, 'p'), 44);
    await close(db);
  });

  it("keeps the log's key order in mapped items, value first, as flumedb over flumelog-offset does", async () => {
    const mapper: Mapper<unknown> = (value, cb) => cb(null, { mapped: value });
    const db = memoryDb(true, mapper);
    await append(db, 1);
    const dir = temporaryDirectory('sluice-flume-order-');
    const upstreamWithMapper = UpstreamFlume as unknown as (...args: unknown[]) => ReturnType<typeof UpstreamFlume>;
    const theirs = upstreamWithMapper(UpstreamOffsetLog(join(dir, 'upstream.offset'), { codec: json }), true, mapper);
    await call((cb) => theirs.append(1, cb));
    // (flumedb with a mapper fails a stream() without options.)
    const upstream = await collect<object>(theirs.stream({}));
    const [item] = await collect<object>(db.stream({}));
    assert.deepEqual(Object.keys(item as object), Object.keys(upstream[0] as object));
    assert.deepEqual(Object.keys(item as object), ['value', 'seq']);
    await close(db);
    await call((cb) => theirs.close(cb));
  });

  it('fails a stream and a get with the error of a failing mapper', async () => {
    const db = memoryDb(true, (value, cb) => (value === 'bad' ? cb(new Error('cannot map')) : cb(null, value)));
    await append(db, 'good');
    const seq = await append(db, 'bad');
    await assert.rejects(call((cb) => db.get(seq, cb)), /cannot map/);
    await assert.rejects(collect(db.stream()), /cannot map/);
    await close(db);
  });
});

describe('Flume: views', () => {
  it('answers a view read issued after an append callback with that append', async () => {
    const { db } = await withProbe();
    for (let n = 1; n <= 5; n++) {
      await append(db, n);
      assert.equal(await viewGet(db, 'p'), (n * (n + 1)) / 2);
    }
    await close(db);
  });

  it('waits for a slow view; since: -1 answers from what the view has; since: N waits for N', async () => {
    const { db, p } = await withProbe({ gated: true });
    const first = await append(db, 10);
    const second = await append(db, 5);
    let answered: number | undefined;
    const waiting = viewGet(db, 'p').then((sum) => (answered = sum));
    const untilFirst = viewGet(db, 'p', { since: first });
    assert.equal(await viewGet(db, 'p', { since: -1 }), 0, 'since: -1 does not wait');
    p.step();
    assert.equal(await untilFirst, 10, 'since: N answers once the view reached N');
    await settle();
    assert.equal(answered, undefined, 'the default read still waits for the second record');
    p.step();
    assert.equal(await waiting, 15);
    const target = second + 100;
    let future: number | undefined;
    const waitingForFuture = viewGet(db, 'p', { since: target }).then((sum) => (future = sum));
    p.step(Infinity);
    while ((db.since.value as number) < target) {
      await settle();
      assert.equal(future, undefined, 'a since beyond the log waits for records to reach it');
      await append(db, 1);
    }
    await waitingForFuture;
    assert.equal(future, p.state.sum);
    await close(db);
  });

  it('refuses at once a since no record can reach (NaN, a fraction, Infinity), not waiting until close', async () => {
    const { db } = await withProbe();
    await append(db, 2);
    const { get, read } = probeApi(db, 'p');
    for (const since of [NaN, 0.5, Infinity]) {
      assert.throws(() => get({ since }, () => undefined), RangeError, `get with since ${since}`);
      assert.throws(() => read({ since }), RangeError, `read with since ${since}`);
    }
    assert.throws(() => get({ since: '0' }, () => undefined), TypeError, 'a since that is not a number');
    assert.equal(await viewGet(db, 'p', { since: -Infinity }), 2, 'any negative since only waits for the load');
    assert.equal(await viewGet(db, 'p', { since: 0 }), 2);
    await close(db);
  });

  it('releases waiting reads in offset order, whatever order they were issued in', async () => {
    const { db, p } = await withProbe({ gated: true });
    const seqs: number[] = [];
    for (let n = 0; n < 4; n++) seqs.push(await append(db, n));
    const released: number[] = [];
    // Inserting in the middle of the queue is what flumedb's waiter queue got wrong.
    for (const i of [3, 0, 2, 1, 2]) {
      void viewGet(db, 'p', { since: seqs[i] }).then(() => released.push(i));
    }
    const expected = [[0], [0, 1], [0, 1, 2, 2], [0, 1, 2, 2, 3]];
    for (const after of expected) {
      p.step();
      await settle();
      assert.deepEqual(released, after);
    }
    await close(db);
  });

  it('mounts view methods by type: sync at once, source after waiting', async () => {
    const { db, p } = await withProbe({ gated: true });
    await append(db, 7);
    const view = probeApi(db, 'p');
    assert.equal(db.views.p, (db as unknown as Record<string, unknown>).p, 'mounted at db[name] too');
    assert.equal(view.peek(), 0, 'a sync method answers at once');
    const read = collect(view.read());
    p.step();
    assert.deepEqual(await read, [7], 'a source waits for the view like an async method');
    const since = db.views.p?.since;
    assert.equal(since?.value, p.since.value);
    assert.equal((since as unknown as { set?: unknown }).set, undefined, "the view's since is read-only");
    await close(db);
  });

  it('refuses a taken name and a view without a required member, naming it', async () => {
    const db = memoryDb();
    db.use('p', probe().create);
    for (const name of ['p', 'append', 'since', 'use', 'del', 'toString']) {
      assert.throws(() => db.use(name, probe().create), (error: Error) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, new RegExp(name));
        return true;
      });
    }
    for (const member of ['since', 'createSink', 'destroy', 'close', 'methods'] as const) {
      assert.throws(() => db.use(`no-${member}`, probe({ without: member }).create), (error: Error) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, new RegExp(member));
        return true;
      });
    }
    const missingMethod = (): unknown => ({ ...probe().create({} as never, 'x'), methods: { lookup: 'async' } });
    assert.throws(() => db.use('bad', missingMethod as never), /lookup/);
    const badType = (): unknown => ({ ...probe().create({} as never, 'x'), methods: { get: 'stream' } });
    assert.throws(() => db.use('bad', badType as never), /get/);
    assert.equal(db.views.bad, undefined, 'a refused view is not mounted');
    await close(db);
  });

  it('holds back indexing and reads while ready is false (since: -1 still answers)', async () => {
    const db = memoryDb(false);
    const p = probe();
    db.use('p', p.create);
    assert.equal(db.ready.value, false);
    await append(db, 3);
    let answered = false;
    const waiting = viewGet(db, 'p').then((sum) => {
      answered = true;
      return sum;
    });
    await settle();
    assert.deepEqual(p.seen, [], 'nothing indexed before ready');
    assert.equal(answered, false);
    assert.equal(await viewGet(db, 'p', { since: -1 }), 0);
    db.ready.set(true);
    assert.equal(await waiting, 3);
    await close(db);
  });

  it('calls a rebuild back while ready is false once the views are destroyed; they index once ready', async () => {
    const db = memoryDb(false);
    const p = probe();
    db.use('p', p.create);
    await append(db, 3);
    const rebuilt = call((cb) => db.rebuild(cb)).then(() => 'rebuilt');
    assert.equal(await Promise.race([rebuilt, settle(10).then(() => 'still waiting')]), 'rebuilt');
    assert.deepEqual(p.events, ['sink-end', 'write', 'destroy'], 'destroyed, and nothing indexed before ready');
    const read = viewGet(db, 'p');
    db.ready.set(true);
    assert.equal(await read, 3, 'a read waits for the rebuilt state once ready');
    // Ready from the start, a rebuild calls back once the views caught up, as before.
    const again = call((cb) => db.rebuild(cb)).then(() => p.state.sum);
    assert.equal(await again, 3);
    await close(db);
  });

  it('destroys and rebuilds a view whose since is ahead of the log', async () => {
    const db = memoryDb();
    await append(db, 4);
    const p = probe({ loadedSince: 1_000_000 });
    db.use('p', p.create);
    assert.equal(await viewGet(db, 'p'), 4);
    assert.deepEqual(p.events, ['destroy', 'item']);
    await close(db);
  });

  it('starts a view from the since it loaded with, once it has loaded', async () => {
    const db = memoryDb();
    const first = await append(db, 1);
    await append(db, 2);
    const p = probe({ loadedSince: null });
    db.use('p', p.create);
    await settle();
    assert.deepEqual(p.seen, [], 'a view that has not loaded is not fed');
    p.since.set(first);
    assert.equal(await viewGet(db, 'p'), 2, 'fed after its since');
    await close(db);
  });

  it('rebuilds a view whose stream fails, and stops it when it keeps failing', async () => {
    let failures = 1;
    const flaky: Mapper<unknown> = (value, cb) =>
      value === 'flaky' && failures-- > 0 ? cb(new Error('flaky')) : cb(null, value);
    const db = memoryDb(true, flaky);
    const p = probe();
    db.use('p', p.create);
    await append(db, 1);
    await append(db, 'flaky');
    await append(db, 2);
    assert.equal(await viewGet(db, 'p'), 3);
    assert.deepEqual(p.events.filter((event) => event === 'destroy').length, 1, 'rebuilt once');
    failures = Infinity;
    await call((cb) => db.rebuild(cb)).catch(() => undefined);
    await assert.rejects(viewGet(db, 'p'), isCode('VIEW_FAILED'));
    assert.equal(p.events.filter((event) => event === 'destroy').length, 2 + viewRestartsMax);
    failures = 0;
    await call((cb) => db.rebuild(cb));
    assert.equal(await viewGet(db, 'p'), 3, 'a rebuild brings a failed view back');
    await close(db);
  });

  it('stops a view that throws, failing its reads, and leaves the others alone', async () => {
    const db = memoryDb();
    const bad = probe({ throwOn: 2 });
    const good = probe();
    db.use('bad', bad.create);
    db.use('good', good.create);
    await append(db, 1);
    await append(db, 2);
    await assert.rejects(viewGet(db, 'bad'), (error: unknown) => {
      assert.ok(isSluiceError(error, 'VIEW_FAILED'));
      assert.match(String((error.cause as Error).message), /probe threw/);
      return true;
    });
    assert.equal(await viewGet(db, 'good'), 3);
    await close(db);
  });

  it('rebuilds every view while appends go on; reads wait for the rebuild', async () => {
    const { db, p } = await withProbe({ gated: true });
    p.step(2);
    await append(db, 1);
    await append(db, 2);
    assert.equal(await viewGet(db, 'p'), 3);
    const rebuilt = call((cb) => db.rebuild(cb));
    let during: number | undefined;
    const answered = viewGet(db, 'p').then((sum) => (during = sum));
    await append(db, 3);
    await settle();
    assert.deepEqual(p.events, ['item', 'item', 'sink-end', 'write', 'destroy'], 'destroyed once its sink ended');
    assert.equal(during, undefined, 'a read issued during the rebuild waits for it');
    p.step();
    await settle();
    assert.equal(during, undefined);
    p.step();
    await answered;
    assert.equal(during, 3, 'answered from the rebuilt state as of the read');
    p.step();
    await rebuilt;
    assert.equal(await viewGet(db, 'p'), 6);
    assert.deepEqual(
      p.seen.map((item) => item.value),
      [1, 2, 3],
    );
    await close(db);
  });
});

describe('Flume: live streams and append callbacks', () => {
  /**
   * Appends `a`, then `b` from its callback, then the batch `[c, d]` from `b`'s, while a live stream drains:
   * what the stream and the callbacks see, in order.
   */
  async function liveOrder(db: Pick<FlumeDB<unknown>, 'append' | 'stream'>): Promise<string[]> {
    const events: string[] = [];
    pull(
      db.stream({ live: true, seqs: false }),
      pull.drain(
        (value: unknown) => {
          events.push(`item ${String(value)}`);
        },
        () => undefined, // Ends with LOG_CLOSED when the database closes.
      ),
    );
    await settle();
    const appendLogged = (value: unknown, name: string): Promise<void> =>
      new Promise((resolve, reject) =>
        db.append(value, (error) => {
          if (error) return reject(error);
          events.push(`cb ${name}`);
          resolve();
        }),
      );
    await appendLogged('a', 'a');
    await appendLogged('b', 'b');
    await appendLogged(['c', 'd'], 'c,d');
    await settle();
    return events;
  }

  it('hands a waiting live stream the records of an append before the append calls back, as flumedb does', async () => {
    const dir = temporaryDirectory('sluice-flume-live-');
    const upstream = UpstreamFlume(UpstreamOffsetLog(join(dir, 'upstream.offset'), { codec: json }));
    const expected = await liveOrder(upstream);
    await call((cb) => upstream.close(cb));
    assert.deepEqual(expected, ['item a', 'cb a', 'item b', 'cb b', 'item c', 'item d', 'cb c,d'], 'flumedb');
    for (const [i, logCase] of logCases.entries()) {
      const caseDir = join(dir, `case-${i}`);
      mkdirSync(caseDir);
      const db = Flume(logCase.open(caseDir));
      assert.deepEqual(await liveOrder(db), expected, logCase.name);
      await close(db);
    }
  });

  it('calls appends back in their order, each once its records reached the live streams and views', async () => {
    const { db, p } = await withProbe();
    const streamed: unknown[] = [];
    pull(
      db.stream({ live: true, seqs: false }),
      pull.drain(
        (value: unknown) => {
          streamed.push(value);
        },
        () => undefined,
      ),
    );
    await settle();
    const values: unknown[] = [1, 2, [3, 4], 5];
    const calledBack: unknown[] = [];
    await Promise.all(
      values.map(
        (value) =>
          new Promise<void>((resolve, reject) =>
            db.append(value, (error) => {
              if (error) return reject(error);
              calledBack.push(value);
              const own = Array.isArray(value) ? (value as unknown[]) : [value];
              for (const item of own) {
                assert.ok(streamed.includes(item), `${String(item)} streamed before its append called back`);
                assert.ok(p.seen.some((seen) => seen.value === item), `${String(item)} taken by the view before`);
              }
              resolve();
            }),
          ),
      ),
    );
    assert.deepEqual(calledBack, values);
    await close(db);
  });

  it('never holds a callback past the current macrotask, for a stream that does not hand its record over', async () => {
    const readers = new LiveReaders();
    const reader = readers.reader();
    // A stream at the end of the log whose read never answers: its record was deleted, or its log reads from a
    // server that is away.
    const stuck = reader.wrap<unknown>(() => undefined);
    reader.opened({ gt: -1, live: true });
    stuck(null, () => undefined);
    const called: string[] = [];
    readers.callBack({ after: -1, seq: 0 }, () => called.push('first'));
    readers.callBack(undefined, () => called.push('second'));
    await Promise.resolve();
    assert.deepEqual(called, [], 'held while the stream may still hand the record over');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(called, ['first', 'second'], 'released at the next macrotask, in order');
  });

  it('does not hold an append back for a live stream that is not waiting for its records', async () => {
    const db = memoryDb();
    await append(db, 0);
    const readOnce = db.stream({ live: true, seqs: false });
    assert.equal(await new Promise((resolve) => readOnce(null, (_end, value) => resolve(value))), 0);
    // The first consumer stopped reading; these two wait for records the appends below never reach.
    const beyond = db.stream({ live: true, gt: 1_000_000 });
    beyond(null, () => undefined);
    const bounded = db.stream({ live: true, gt: 0, lte: 1 });
    bounded(null, () => undefined);
    for (let n = 1; n <= 3; n++) await append(db, n);
    await close(db);
  });
});

describe('Flume: close', () => {
  it('fails waiting reads with VIEW_CLOSED, closes each view after its sink wrote, then the log', async () => {
    const log = new SluiceMemoryLog<unknown>();
    const db = Flume(fromLog(log));
    const p = probe({ gated: true });
    db.use('p', p.create);
    await append(db, 1);
    await settle(); // The probe now holds the record at its gate.
    const waiting = viewGet(db, 'p');
    const source = probeApi(db, 'p').read();
    const sourceEnded = new Promise<unknown>((resolve) => source(null, resolve));
    const closed = close(db);
    assert.equal(db.closed, true);
    await assert.rejects(waiting, isCode('VIEW_CLOSED'));
    assert.ok(isSluiceError(await sourceEnded, 'VIEW_CLOSED'), 'a waiting source ends with VIEW_CLOSED');
    p.step(Infinity); // The probe takes the item it holds, then sees the end.
    await closed;
    assert.deepEqual(p.events.slice(-3), ['sink-end', 'write', 'close'], 'closed only after its last write');
    assert.equal(log.status, 'closed');
  });

  it('closes one view with db[name].close: its reads fail with VIEW_CLOSED, the other views go on', async () => {
    const db = memoryDb();
    const p = probe({ gated: true });
    const other = probe();
    db.use('p', p.create);
    db.use('other', other.create);
    await append(db, 1);
    await settle(); // The probe now holds the record at its gate.
    const waiting = viewGet(db, 'p');
    const view = db.views.p as unknown as { close: (cb?: (error?: Error | null) => void) => void };
    assert.equal((db as unknown as { p: unknown }).p, view, 'db[name] and db.views[name] are the same view');
    assert.equal(typeof view.close, 'function');
    const closed = call((cb) => view.close(cb));
    await assert.rejects(waiting, isCode('VIEW_CLOSED'));
    p.step(Infinity); // The probe takes the item it holds, then sees the end.
    await closed;
    assert.deepEqual(p.events.slice(-3), ['sink-end', 'write', 'close'], 'closed only after its last write');
    await assert.rejects(viewGet(db, 'p'), isCode('VIEW_CLOSED'));
    await assert.rejects(collect(probeApi(db, 'p').read()), isCode('VIEW_CLOSED'));
    assert.throws(() => probeApi(db, 'p').peek(), isCode('VIEW_CLOSED'));
    await call((cb) => view.close(cb));
    await append(db, 2);
    assert.equal(await viewGet(db, 'other'), 3, 'the other view goes on');
    await call((cb) => db.rebuild(cb));
    assert.equal(await viewGet(db, 'other'), 3, 'a rebuild leaves the closed view closed');
    await close(db);
    assert.equal(p.events.filter((event) => event === 'close').length, 1, 'closed once, not again with the database');
    assert.deepEqual(p.events.filter((event) => event === 'destroy'), []);
  });

  it("passes the error given to a view's close(err, cb) on to a view whose close takes two arguments", async () => {
    const db = memoryDb();
    const given: unknown[] = [];
    const base = probe().create;
    db.use(
      'p',
      (log, name) =>
        ({
          ...base(log, name),
          close(error: unknown, cb: () => void) {
            given.push(error);
            cb();
          },
        }) as never,
    );
    await settle();
    const reason = new Error('shutting down');
    const view = db.views.p as unknown as { close: (error: Error, cb: (error?: Error | null) => void) => void };
    await call((cb) => view.close(reason, cb));
    assert.deepEqual(given, [reason]);
    assert.throws(() => db.use('q', () => ({ ...base({} as never, 'q'), methods: { close: 'sync' } })), /close/);
    await close(db);
  });

  it('is idempotent; every other method then throws LOG_CLOSED', async () => {
    const { db } = await withProbe();
    await append(db, 1);
    const live = collect(db.stream({ live: true }));
    await Promise.all([close(db), close(db)]);
    await assert.rejects(live, (error) => isSluiceError(error, 'LOG_CLOSED'), 'a live stream ends with the log');
    await close(db);
    const closedCode = (error: unknown): boolean => isSluiceError(error, 'LOG_CLOSED');
    assert.throws(() => db.append(1, () => undefined), closedCode);
    assert.throws(() => db.get(0, () => undefined), closedCode);
    assert.throws(() => db.stream(), closedCode);
    assert.throws(() => db.use('q', probe().create), closedCode);
    assert.throws(() => db.rebuild(() => undefined), closedCode);
    assert.throws(() => probeApi(db, 'p').get(() => undefined), closedCode);
    assert.throws(() => db.del?.(0, () => undefined), closedCode);
  });
});

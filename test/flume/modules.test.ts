import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Flume, type FlumeDB } from '../../src/flume/flume.js';
import type { PullSource } from '../../src/flume/pull.js';
import { temporaryDirectory } from '../helpers.js';
import {
  call,
  collect,
  json,
  Level,
  levelClearsDone,
  logCases,
  UpstreamOffsetLog,
  Query,
  Reduce,
  type LogCase,
} from './support.js';

/**
 * flumeview-reduce, flumeview-level and flumeview-query from npm, unchanged, on `sluice/flume`, over every
 * flumelog constructor in `logCases`.
 */

interface Post {
  readonly author: string;
  readonly ts: number;
  readonly n: number;
}

const posts: readonly Post[] = [
  { author: 'a', ts: 3, n: 1 },
  { author: 'b', ts: 1, n: 2 },
  { author: 'a', ts: 1, n: 3 },
  { author: 'c', ts: 2, n: 4 },
  { author: 'a', ts: 2, n: 5 },
  { author: 'b', ts: 5, n: 6 },
];
const total = posts.reduce((sum, post) => sum + post.n, 0);

type Callback = (error: Error | null, value?: unknown, seq?: number) => void;

/** The views' methods, typed as the modules define them. */
interface Views {
  sum: { get(cb: Callback): void; stream(options?: object): PullSource<unknown> };
  byAuthor: { get(key: unknown, cb: Callback): void; read(options: object): PullSource<unknown> };
  query: { read(options: object): PullSource<unknown>; explain(options: object): { index?: string; scan?: boolean } };
}

interface Opened {
  readonly db: FlumeDB<unknown>;
  readonly views: Views;
  /** How many times each view's own function ran since this open. */
  readonly calls: { map: number; reduce: number; index: number };
}

function open(logCase: LogCase, dir: string, version = 1): Opened {
  const calls = { map: 0, reduce: 0, index: 0 };
  const db = Flume(logCase.open(dir));
  assert.equal(db.dir, dir, 'views keep their state beside the log');
  db.use(
    'sum',
    Reduce(
      version,
      (sum, n) => (calls.reduce++, (sum as number) + (n as number)),
      (post) => (calls.map++, (post as Post).n),
      null,
      0,
    ),
  );
  db.use(
    'byAuthor',
    Level(version, (post) => (calls.index++, [[(post as Post).author, (post as Post).ts]])),
  );
  db.use('query', Query(version, { indexes: [{ key: 'AT', value: [['author'], ['ts']] }] }));
  return { db, views: db.views as unknown as Views, calls };
}

async function appendPosts(db: FlumeDB<unknown>, batch: readonly Post[]): Promise<number[]> {
  const seqs: number[] = [];
  // One at a time, then the rest as one batch: both kinds of append feed the views.
  for (const post of batch.slice(0, 2)) seqs.push(await call<number>((cb) => db.append(post, cb)));
  await call<number>((cb) => db.append(batch.slice(2), cb));
  return seqs;
}

const sumOf = (views: Views): Promise<unknown> => call((cb) => views.sum.get(cb));
const close = (db: FlumeDB<unknown>): Promise<void> => call((cb) => db.close(cb));

for (const logCase of logCases) {
  describe(`flume views from npm on ${logCase.name}`, () => {
    const root = temporaryDirectory('sluice-flume-modules-');
    let count = 0;
    const directory = (): string => {
      const dir = join(root, `db-${count++}`);
      mkdirSync(dir);
      return dir;
    };

    it('flumeview-reduce: the state after appends, and its stream', async () => {
      const { db, views, calls } = open(logCase, directory());
      assert.equal(await sumOf(views), 0);
      await appendPosts(db, posts);
      assert.equal(await sumOf(views), total, 'a read after the appends sees all of them');
      assert.deepEqual(await collect(views.sum.stream()), [total]);
      assert.equal(calls.reduce, posts.length);
      await close(db);
    });

    it('flumeview-level: get by key, and range reads', async () => {
      const { db, views } = open(logCase, directory());
      await appendPosts(db, posts);
      const found = await new Promise<{ value: unknown; seq: number }>((resolve, reject) =>
        views.byAuthor.get(['c', 2], (error, value, seq) =>
          error ? reject(error) : resolve({ value, seq: seq as number }),
        ),
      );
      assert.deepEqual(found.value, posts[3]);
      assert.deepEqual(await call((cb) => db.get(found.seq, cb)), posts[3], 'the entry points at the record');
      const ofA = (await collect<{ value: Post }>(views.byAuthor.read({ gte: ['a', null], lte: ['a', undefined] })))
        .map((entry) => entry.value.ts);
      assert.deepEqual(ofA, [1, 2, 3], "a's posts in key order");
      const reversed = await collect<{ value: Post }>(
        views.byAuthor.read({ gt: ['a', 1], lt: ['b', undefined], reverse: true, limit: 2 }),
      );
      assert.deepEqual(
        reversed.map((entry) => [entry.value.author, entry.value.ts]),
        [
          ['b', 5],
          ['b', 1],
        ],
      );
      await close(db);
    });

    it('flumeview-query: answers from the index it chooses, or by a scan, as a filter would', async () => {
      const { db, views } = open(logCase, directory());
      await appendPosts(db, posts);
      const indexed = { query: [{ $filter: { author: 'a', ts: { $gt: 1 } } }] };
      assert.equal(views.query.explain(indexed).index, 'AT');
      assert.deepEqual(await collect(views.query.read(indexed)), [posts[4], posts[0]], 'in index order: by ts');
      const scanned = { query: [{ $filter: { n: { $gte: 4 } } }] };
      assert.equal(views.query.explain(scanned).scan, true, 'no index has n');
      assert.deepEqual(
        await collect(views.query.read(scanned)),
        posts.filter((post) => post.n >= 4),
      );
      const reduced = { query: [{ $filter: { author: 'b' } }, { $reduce: { $count: true } }] };
      assert.deepEqual(await collect(views.query.read(reduced)), [2]);
      await close(db);
    });

    it('rebuilds every view with db.rebuild, while reads wait for it', async () => {
      const { db, views, calls } = open(logCase, directory());
      await appendPosts(db, posts);
      assert.equal(await sumOf(views), total);
      await collect(views.byAuthor.read({ gte: ['a', null], lte: ['z', undefined] }));
      calls.map = calls.reduce = calls.index = 0;
      const rebuilt = call((cb) => db.rebuild(cb));
      const during = sumOf(views);
      await rebuilt;
      assert.equal(await during, total, 'a read issued during the rebuild answers from the rebuilt state');
      assert.deepEqual(calls, { map: posts.length, reduce: posts.length, index: posts.length });
      const entries = await collect(views.byAuthor.read({ gte: ['a', null], lte: ['z', undefined] }));
      assert.equal(entries.length, posts.length, 'every entry is back (the destroy waited for the clear)');
      assert.deepEqual(await collect(views.query.read({ query: [{ $filter: { author: 'a' } }] })), [
        posts[2],
        posts[4],
        posts[0],
      ]);
      await close(db);
    });

    if (logCase.persistent) {
      it('reopens without reprocessing; a new version rebuilds', async () => {
        const dir = directory();
        const first = open(logCase, dir);
        await appendPosts(first.db, posts);
        // Reads from every view, so each has caught up (and saved its state) before the close.
        assert.equal(await sumOf(first.views), total);
        assert.equal((await collect(first.views.byAuthor.read({ gte: ['a', null], lte: ['z', undefined] }))).length, 6);
        assert.equal((await collect(first.views.query.read({ query: [{ $filter: { author: 'c' } }] }))).length, 1);
        await close(first.db);

        const again = open(logCase, dir);
        assert.equal(await sumOf(again.views), total);
        const byAuthor = await collect(again.views.byAuthor.read({ gte: ['b', null], lte: ['b', undefined] }));
        assert.equal(byAuthor.length, 2);
        assert.equal((await collect(again.views.query.read({ query: [{ $filter: { author: 'a' } }] }))).length, 3);
        assert.deepEqual(again.calls, { map: 0, reduce: 0, index: 0 }, 'nothing reprocessed after a reopen');
        await call((cb) => again.db.append({ author: 'd', ts: 9, n: 10 }, cb));
        assert.equal(await sumOf(again.views), total + 10);
        assert.equal((await collect(again.views.byAuthor.read({ gte: ['d', null], lte: ['d', undefined] }))).length, 1);
        assert.deepEqual(again.calls, { map: 1, reduce: 1, index: 1 }, 'only the new record');
        await close(again.db);

        const bumped = open(logCase, dir, 2);
        assert.equal(await sumOf(bumped.views), total + 10);
        // These reads wait until the LevelDB views have caught up; what they return is not checked: on a version
        // change flumeview-level 4.0.4 starts a LevelDB clear it does not wait for, while the database feeds it
        // the log at once (as flumedb does), so that clear may delete entries the rebuild has just written.
        await collect(bumped.views.byAuthor.read({ gte: ['d', null], lte: ['d', undefined] }));
        await collect(bumped.views.query.read({ query: [{ $filter: { author: 'd' } }] }));
        const processed = posts.length + 1;
        assert.deepEqual(bumped.calls, { map: processed, reduce: processed, index: processed }, 'rebuilt');
        await levelClearsDone();
        await close(bumped.db);
      });
    } else {
      it('starts empty after a reopen, and views whose state is ahead of it are rebuilt', async () => {
        const dir = directory();
        const first = open(logCase, dir);
        await appendPosts(first.db, posts);
        assert.equal(await sumOf(first.views), total);
        await close(first.db);

        const again = open(logCase, dir);
        assert.equal(again.db.since.value, -1);
        assert.equal(await sumOf(again.views), 0, 'the saved state claimed records this log has not');
        await assert.rejects(call((cb) => again.views.byAuthor.get(['c', 2], cb)), /NotFound/);
        await appendPosts(again.db, posts.slice(0, 3));
        assert.equal(await sumOf(again.views), 6);
        assert.equal((await collect(again.views.query.read({ query: [{ $filter: { author: 'a' } }] }))).length, 2);
        await close(again.db);
      });
    }
  });
}

describe('the database over a flumelog from npm', () => {
  it('runs flumelog-offset 3.4.4 with flumeview-reduce, as flumedb did', async () => {
    const dir = temporaryDirectory('sluice-flume-offset-');
    const db = Flume(UpstreamOffsetLog(join(dir, 'log.offset'), { codec: json }));
    db.use(
      'sum',
      Reduce(1, (sum, n) => (sum as number) + (n as number), (post) => (post as Post).n, null, 0),
    );
    await appendPosts(db, posts);
    assert.equal(await sumOf(db.views as unknown as Views), total);
    assert.deepEqual(await collect(db.stream({ seqs: false })), posts);
    await close(db);
  });
});

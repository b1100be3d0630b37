/**
 * `Sluice.delete`: the log forgets the records and every view is told, between batches, about the records it
 * had applied; a record it had not reached yet never reaches it.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { FileLog } from '../../src/log/file/file-log.js';
import type { LogRecord } from '../../src/log/log.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import { index } from '../../src/views/index-view.js';
import { keyIndex, timeIndex } from '../../src/views/key-time-index.js';
import { query } from '../../src/views/query/query-view.js';
import { reduce } from '../../src/views/reduce.js';
import type { View } from '../../src/views/view.js';
import { rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let count = 0;
const directory = (): string => join(root, `db-${count++}`);

async function all<E>(iterable: AsyncIterable<E>): Promise<E[]> {
  const items: E[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

interface Post {
  readonly author: string;
  readonly n: number;
}


/**
 * A view that records the values it applies (`seen`) and the values of the records it is told were deleted
 * (`deletedSeen`), two records per batch; `before`, when given, is awaited before the first batch is applied.
 */
function recordingView(before?: () => Promise<void>): { view: View<number>; seen: number[]; deletedSeen: number[] } {
  const seen: number[] = [];
  const deletedSeen: number[] = [];
  const view: View<number> = {
    version: 1,
    batchRecords: 2,
    open: () => Promise.resolve(-1),
    async apply(records: readonly LogRecord<number>[]) {
      if (seen.length === 0 && before !== undefined) await before();
      for (const record of records) seen.push(record.value);
    },
    delete(records) {
      for (const record of records) deletedSeen.push(record.value);
    },
    checkpoint: () => Promise.resolve(),
    clear: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return { view, seen, deletedSeen };
}

describe('Sluice.delete', () => {
  it('deletes from the log and drops the entries of the index, key index and query views', async () => {
    await using db = await Sluice.open<Post>(directory());
    const byN = db.use('byN', index<Post>(1, (post) => post.n));
    const byAuthor = db.use('byAuthor', keyIndex<Post>(1, { keyOf: (post) => post.author }));
    const posts = db.use('posts', query<Post>(1, { indexes: [{ name: 'author', value: [['value', 'author']] }] }));
    const count = db.use('count', reduce<Post, number>(1, (total) => total + 1, { initial: 0 }));
    const offsets = await db.append([
      { author: 'ann', n: 1 },
      { author: 'bob', n: 2 },
      { author: 'ann', n: 3 },
    ]);
    await db.ready();
    await db.delete(offsets[2] as number);
    await rejectsWith(db.get(offsets[2] as number), 'RECORD_DELETED');
    assert.equal(await byN.get(3), undefined);
    assert.deepEqual((await byN.get(1))?.value, { author: 'ann', n: 1 });
    assert.deepEqual((await all(byN.read())).map((entry) => entry.key), [1, 2]);
    // The key's last record is the one before the deleted one.
    assert.equal((await byAuthor.last('ann'))?.offset, offsets[0]);
    const annPosts = await all(posts.read({ query: [{ $filter: { value: { author: 'ann' } } }] }));
    assert.deepEqual(
      annPosts.map((record) => (record as LogRecord<Post>).offset),
      [offsets[0]],
    );
    // A reduce cannot unfold: it keeps counting the deleted record until it is rebuilt.
    assert.equal(await count.get(), 3);
    await db.rebuild('count');
    assert.equal(await count.get(), 2);
    assert.throws(() => db.delete('x' as unknown as number), TypeError);
    await rejectsWith(db.delete(offsets[0] as number + 1), 'NOT_A_RECORD');
    await db.delete(offsets[2] as number);
  });

  it('keeps a deleted record from a view that had not reached it, even from a batch already read', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { view, seen, deletedSeen } = recordingView(() => gate);
    await using db = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>(), views: { v: view } });
    const offsets = await db.append([1, 2, 3, 4, 5, 6]);
    // The view is held inside its first batch (records 1 and 2) while 2 and 4 are deleted.
    await new Promise((resolve) => setImmediate(resolve));
    const deleting = db.delete([offsets[1] as number, offsets[3] as number]);
    release();
    await deleting;
    await db.ready('v');
    assert.deepEqual(seen, [1, 2, 3, 5, 6]);
    assert.deepEqual(deletedSeen, [2], 'only the record it had applied');
  });

  it('loses no record from any view when the log fails to delete while the views catch up', async () => {
    const dir = directory();
    const log = await FileLog.open<Post>(dir);
    const total = 20_000;
    const authors = ['ann', 'bob', 'cy', 'dee', 'eve', 'fay', 'gus'];
    const offsets = await log.append(Array.from({ length: total }, (_, n) => ({ author: authors[n % 7] as string, n })));
    // The deletes journal cannot be written (a directory stands in its place): every delete fails, none deletes.
    mkdirSync(join(dir, 'DELETES'));
    const seen: number[] = [];
    const spy: View<Post> = {
      version: 1,
      batchRecords: 64,
      open: () => Promise.resolve(-1),
      apply(records) {
        for (const record of records) seen.push(record.offset);
      },
      checkpoint: () => Promise.resolve(),
      clear: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
    const db = await Sluice.open<Post>(dir, {
      log,
      views: {
        spy,
        byN: index<Post>(1, (post) => post.n),
        byAuthor: keyIndex<Post>(1, { keyOf: (post) => post.author }),
        byTime: timeIndex<Post>(1),
        posts: query<Post>(1, { indexes: [{ name: 'author', value: [['value', 'author']] }] }),
        sum: reduce<Post, { count: number; sum: number }>(1, (state, post) => ({ count: state.count + 1, sum: state.sum + post.n }), {
          initial: { count: 0, sum: 0 },
        }),
      },
    });
    try {
      const views = db.views;
      // Deletes all over the log, one after another while the views are still catching up: each fails.
      let failures = 0;
      for (let k = 0; k < 24; k++) {
        const pick = offsets.filter((_, n) => n % 89 === k);
        try {
          await db.delete(pick);
        } catch (error) {
          assert.ok(isSluiceError(error, 'WRITE_FAILED'), String(error));
          failures++;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(failures, 24);
      await db.ready();

      // Recomputed from the log: every record is still there, so every view holds every one.
      const records = await all(db.stream());
      assert.equal(records.length, total);
      const expected = records.map((record) => record.offset);
      assert.deepEqual(seen, expected, 'the spy view was fed every record, once, in order');
      const byN = views.byN as ReturnType<typeof index<Post>>;
      assert.deepEqual(
        (await all(byN.read())).map((entry) => entry.offset),
        expected,
      );
      const byTime = views.byTime as ReturnType<typeof timeIndex<Post>>;
      assert.deepEqual(
        (await all(byTime.between(0, Number.MAX_SAFE_INTEGER))).map((entry) => entry.offset).sort((a, b) => a - b),
        expected,
      );
      const byAuthor = views.byAuthor as ReturnType<typeof keyIndex<Post>>;
      const posts = views.posts as ReturnType<typeof query<Post>>;
      for (const author of authors) {
        const mine = records.filter((record) => record.value.author === author).map((record) => record.offset);
        assert.deepEqual(
          (await all(byAuthor.records(author))).map((record) => record.offset),
          mine,
          `key index, ${author}`,
        );
        const found = await all(posts.read({ query: [{ $filter: { value: { author } } }] }));
        assert.deepEqual(
          found.map((record) => (record as LogRecord<Post>).offset).sort((a, b) => a - b),
          mine,
          `query view, ${author}`,
        );
      }
      const sum = views.sum as ReturnType<typeof reduce<Post, { count: number; sum: number }>>;
      assert.deepEqual(await sum.get(), { count: total, sum: records.reduce((acc, record) => acc + record.value.n, 0) });
    } finally {
      await db.close();
    }
  });

  it('holds a view at a record whose deletion is in flight, then applies it if the log failed to delete it', async () => {
    const { view, seen, deletedSeen } = recordingView();
    const log = await MemoryLog.open<number>();
    const realDelete = log.delete.bind(log);
    // The log's delete waits for the test, then deletes `partly` (a rewrite that failed half-way) and fails.
    let release: () => void = () => undefined;
    let partly: number[] = [];
    log.delete = async () => {
      await new Promise<void>((resolve) => (release = resolve));
      if (partly.length > 0) await realDelete(partly);
      throw new Error('the disk is gone');
    };
    await using db = await Sluice.open<number>(directory(), { log, views: { v: view } });
    const offsets = await db.append([1, 2, 3, 4, 5, 6]);
    await db.ready('v');
    // 2 was applied; 8 and 9 are not yet (the view catches up in a later turn): it is held before 8.
    const more = await db.append([7, 8, 9, 10]);
    const deleting = db.delete([offsets[1] as number, more[1] as number, more[2] as number]);
    const settled = assert.rejects(deleting, /the disk is gone/);
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    // Appends go on, and reads for records before the held one answer.
    const last = await db.append(11);
    await db.ready('v', { since: more[0] as number });
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7], 'nothing past the held record before the deletion settles');
    // The failed delete still deleted 2 and 9 (as a rewrite that failed half-way may).
    partly = [offsets[1] as number, more[2] as number];
    release();
    await settled;
    await db.ready('v', { since: last });
    // 8 is still in the log: applied. 9 is gone: never applied. 2 was applied and is gone: the view's delete has it.
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]);
    assert.deepEqual(deletedSeen, [2]);
  });

  it('holds a view at a deletion in flight even when the log hides the record before its delete resolves', async () => {
    const log = await MemoryLog.open<number>();
    const realDelete = log.delete.bind(log);
    // As flumelog-offset in disk durability: streams skip the record at once, the delete resolves later.
    let hidden: () => void = () => undefined;
    const wasHidden = new Promise<void>((resolve) => (hidden = resolve));
    let release: () => void = () => undefined;
    log.delete = async (offsets) => {
      await realDelete(offsets);
      hidden();
      await new Promise<void>((resolve) => (release = resolve));
    };
    let entered: () => void = () => undefined;
    const inFirstApply = new Promise<void>((resolve) => (entered = resolve));
    let letFirstApply: () => void = () => undefined;
    const { view, seen, deletedSeen } = recordingView(() => {
      entered();
      return new Promise<void>((resolve) => (letFirstApply = resolve));
    });
    await using db = await Sluice.open<number>(directory(), { log, views: { v: view } });
    await db.append(1);
    // While the view applies 1, 2 and 3 are appended and 2 deleted: the view reads them after the log hid 2.
    await inFirstApply;
    const [deletedOffset] = await db.append([2, 3]);
    const deleting = db.delete(deletedOffset as number);
    letFirstApply();
    await wasHidden;
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, [1], 'nothing past the deleted record before its deletion settles');
    release();
    await deleting;
    await db.ready('v');
    assert.deepEqual(seen, [1, 3]);
    assert.deepEqual(deletedSeen, [], 'the view is not asked to delete a record it never applied');
  });

  it('refuses a log without deletes with a TypeError', async () => {
    const log = Object.assign(await MemoryLog.open<number>(), { delete: undefined });
    await using db = await Sluice.open<number>(directory(), { log });
    assert.throws(() => db.delete(0), TypeError);
  });
});

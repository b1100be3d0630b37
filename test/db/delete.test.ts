/**
 * `Sluice.delete`: the log forgets the records and every view is told, between batches, about the records it
 * had applied; a record it had not reached yet never reaches it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import type { LogRecord } from '../../src/log/log.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import { index } from '../../src/views/index-view.js';
import { keyIndex } from '../../src/views/key-time-index.js';
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
    const seen: number[] = [];
    const deletedSeen: number[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const view: View<number> = {
      version: 1,
      batchRecords: 2,
      open: () => Promise.resolve(-1),
      async apply(records: readonly LogRecord<number>[]) {
        if (seen.length === 0) await gate;
        for (const record of records) seen.push(record.value);
      },
      delete(records) {
        for (const record of records) deletedSeen.push(record.value);
      },
      checkpoint: () => Promise.resolve(),
      clear: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
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

  it('refuses a log without deletes with a TypeError', async () => {
    const log = Object.assign(await MemoryLog.open<number>(), { delete: undefined });
    await using db = await Sluice.open<number>(directory(), { log });
    assert.throws(() => db.delete(0), TypeError);
  });
});

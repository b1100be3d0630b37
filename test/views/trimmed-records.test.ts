/**
 * A trim drops the log's oldest segments without visiting the views: the entries of index, key, time and query
 * views that point into them stay until the views prune them (`View.prune`, at their next batch, checkpoint or
 * open). Reads must skip them meanwhile as records no longer in the log, and answer as a scan of what is left does.
 * A compaction drops records without visiting the views either, and reads skip their entries the same way.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { open as openLmdb, type Key } from 'lmdb';
import { Sluice } from '../../src/db/sluice.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { index } from '../../src/views/index-view.js';
import { keyIndex, timeIndex } from '../../src/views/key-time-index.js';
import { orderedBinaryKeys } from '../../src/views/lmdb-store.js';
import { query } from '../../src/views/query/index.js';
import { temporaryDirectory } from '../helpers.js';

interface Post {
  readonly author: string;
  readonly n: number;
  readonly pad: string;
}

async function collect<R>(results: AsyncIterable<R>): Promise<R[]> {
  const found: R[] = [];
  for await (const result of results) found.push(result);
  return found;
}

it('index-served reads after a trim skip the trimmed records and answer as a scan does', async () => {
  const root = temporaryDirectory();
  await using log = await FileLog.open<Post>(join(root, 'log'), { segmentBytesMax: 4096 });
  await using db = await Sluice.open<Post>(join(root, 'db'), { log });
  const indexed = db.use('indexed', query<Post>(1, { indexes: [{ name: 'author', value: [['value', 'author']] }] }));
  const scanned = db.use('scanned', query<Post>(1));
  const byAuthor = db.use('byAuthor', index<Post>(1, (post) => [post.author, post.n]));
  const byN = db.use('byN', index<Post>(1, (post) => post.n));
  const byKey = db.use('byKey', keyIndex<Post>(1));
  const byTime = db.use('byTime', timeIndex<Post>(1));
  const offsets: number[] = [];
  for (let n = 0; n < 200; n++) {
    const author = n % 2 === 1 ? '@a' : '@b';
    offsets.push(await db.append({ author, n, pad: 'x'.repeat(100) }, { key: n % 2 === 1 ? 'odd' : `even-${n}`, time: 1000 + n }));
  }
  await log.trim({ beforeOffset: offsets[100] });
  const first = log.firstOffset;
  const firstN = offsets.indexOf(first);
  assert.ok(firstN > 0 && firstN <= 100, 'the trim dropped whole segments from the front');
  const left = Array.from({ length: 200 - firstN }, (_, i) => firstN + i);
  const even = left.filter((n) => n % 2 === 0);
  const odd = left.filter((n) => n % 2 === 1);

  const q = { query: [{ $filter: { value: { author: '@b' } } }, { $map: ['value', 'n'] }] } as const;
  const expected = even;
  assert.deepEqual(await collect(scanned.read(q)), expected);
  assert.deepEqual(await collect(indexed.read(q)), expected, 'served by the index');
  assert.equal(indexed.explain(q).index, 'author');

  assert.equal(await byN.get(0), undefined, 'a trimmed entry reads as no entry');
  assert.equal((await byN.get(firstN))?.offset, first);
  const entries = await collect(byAuthor.read({ gte: ['@a'], lt: ['@b'], limit: 5 }));
  assert.deepEqual(entries.map((entry) => entry.value.n), odd.slice(0, 5), 'a limit counts only records still there');

  assert.equal(await byKey.last('even-0'), undefined);
  assert.deepEqual((await collect(byKey.records('odd'))).map((record) => record.value.n), odd);
  assert.equal((await byTime.firstAtOrAfter(0))?.offset, first);
  assert.deepEqual((await collect(byTime.between(0, 5000))).map((record) => record.value.n), left);
});

/** The offsets the entries of an LMDB view store point at (its `entries` database), read after the view closed. */
function entryOffsets(file: string): number[] {
  const root = openLmdb({ path: file, readOnly: true });
  try {
    const entries = root.openDB<number, Key>({ name: 'entries', encoding: 'ordered-binary', ...orderedBinaryKeys });
    return [...entries.getRange({})].map(({ value }) => value);
  } finally {
    void root.close();
  }
}

it('a trim prunes the entries of the records it dropped from index and query views, at the next batch and at open', async () => {
  const root = temporaryDirectory();
  const views = {
    byN: index<Post>(1, (post) => post.n),
    byTime: timeIndex<Post>(1),
    indexed: query<Post>(1, { indexes: [{ name: 'author', value: [['value', 'author']] }] }),
  };
  const files = [join('byN', 'index.mdb'), join('byTime', 'index.mdb'), join('indexed', 'query.mdb')].map((file) =>
    join(root, 'db', 'views', file),
  );
  const offsets: number[] = [];
  let first: number;
  {
    await using log = await FileLog.open<Post>(join(root, 'log'), { segmentBytesMax: 4096 });
    await using db = await Sluice.open<Post>(join(root, 'db'), { log, views });
    for (let n = 0; n < 200; n++) offsets.push(await db.append({ author: `@${n % 3}`, n, pad: 'x'.repeat(100) }));
    await db.ready();
    await assert.rejects(views.byN.prune(-1), RangeError);
    await assert.rejects(views.indexed.prune(Number.NaN), RangeError);
    await log.trim({ beforeOffset: offsets[100] });
    first = log.firstOffset;
    assert.ok(first > 0);
    // The next batch a view takes in comes after the prune.
    offsets.push(await db.append({ author: '@0', n: 200, pad: '' }));
    await db.ready();
    await db.close();
    for (const file of files) {
      const kept = entryOffsets(file);
      assert.deepEqual(kept.filter((offset) => offset < first), [], `${file}: no entry of a trimmed record`);
      assert.deepEqual(new Set(kept), new Set(offsets.filter((offset) => offset >= first)), `${file}: every other entry`);
    }
  }
  // Trimmed while the database is closed: pruned when it opens again.
  {
    await using log = await FileLog.open<Post>(join(root, 'log'), { segmentBytesMax: 4096 });
    await log.trim({ beforeOffset: offsets[150] });
    first = log.firstOffset;
    assert.ok(first > offsets[100]!);
    await using db = await Sluice.open<Post>(join(root, 'db'), { log, views: { byN: index<Post>(1, (post) => post.n) } });
    await db.ready();
    await db.close();
    assert.deepEqual(new Set(entryOffsets(files[0]!)), new Set(offsets.filter((offset) => offset >= first)));
  }
});

it('index-served reads after a compaction skip the records it dropped and answer as a scan does', async () => {
  const root = temporaryDirectory();
  await using log = await FileLog.open<Post>(join(root, 'log'), { segmentBytesMax: 4096 });
  await using db = await Sluice.open<Post>(join(root, 'db'), { log });
  const indexed = db.use('indexed', query<Post>(1, { indexes: [{ name: 'author', value: [['value', 'author']] }] }));
  const scanned = db.use('scanned', query<Post>(1));
  const byN = db.use('byN', index<Post>(1, (post) => post.n));
  const byKey = db.use('byKey', keyIndex<Post>(1));
  const byTime = db.use('byTime', timeIndex<Post>(1));
  const offsets: number[] = [];
  // Three record keys in turn: compaction keeps each key's last record and covers runs of the others with fillers,
  // so that a dropped record's offset is a filler's (RECORD_DELETED) or inside one (NOT_A_RECORD).
  for (let n = 0; n < 100; n++) {
    offsets.push(await db.append({ author: n % 2 === 0 ? '@a' : '@b', n, pad: 'x'.repeat(100) }, { key: `k${n % 3}`, time: 1000 + n }));
  }
  await db.ready();
  assert.ok((await log.compact()).recordsDropped > 50);
  const left = (await collect(db.stream())).map((record) => record.value.n);
  assert.ok(left.length < 50 && left.includes(99));

  assert.deepEqual(await collect(indexed.read({ query: [{ $filter: { value: { author: '@a' } } }, { $map: ['value', 'n'] }] })), left.filter((n) => n % 2 === 0));
  assert.deepEqual(await collect(scanned.read({ query: [{ $map: ['value', 'n'] }] })), left);
  assert.deepEqual((await collect(byN.read())).map((entry) => entry.value.n), left);
  for (let n = 0; n < 5; n++) assert.equal((await byN.get(n))?.offset, left.includes(n) ? offsets[n] : undefined, `get(${n})`);
  assert.deepEqual((await collect(byKey.records('k1'))).map((record) => record.value.n), left.filter((n) => n % 3 === 1));
  assert.equal((await byKey.last('k1'))?.value.n, 97);
  assert.equal((await byTime.firstAtOrAfter(0))?.value.n, left[0]);
  assert.deepEqual((await collect(byTime.between(0, 5000))).map((entry) => entry.value.n), left);
});

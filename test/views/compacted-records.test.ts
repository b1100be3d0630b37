/**
 * A compaction drops the superseded records of each key without visiting the views: the entries of index, key and
 * query views that point at them stay. The first record of each run it drops reads as deleted, the others as no
 * record at all (their bytes are a filler now). Reads must skip both, and answer as a scan of what is left does.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { index } from '../../src/views/index-view.js';
import { keyIndex } from '../../src/views/key-time-index.js';
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

it('index, key and query view reads after a compaction skip the records it dropped and answer as a scan does', async () => {
  const root = temporaryDirectory();
  await using log = await FileLog.open<Post>(join(root, 'log'), { segmentBytesMax: 4096 });
  await using db = await Sluice.open<Post>(join(root, 'db'), { log });
  const indexed = db.use('indexed', query<Post>(1, { indexes: [{ name: 'author', value: [['value', 'author']] }] }));
  const scanned = db.use('scanned', query<Post>(1));
  const byN = db.use('byN', index<Post>(1, (post) => post.n));
  const byKey = db.use('byKey', keyIndex<Post>(1));
  for (let n = 0; n < 200; n++) {
    // Two records in three share one key: compaction keeps the last of them only, and drops runs of two records,
    // the second of which is inside a filler. The others each have a key of their own.
    const shared = n % 3 !== 0;
    await db.append({ author: shared ? '@a' : '@b', n, pad: 'x'.repeat(100) }, { key: shared ? 'shared' : `own-${n}` });
  }
  await db.ready();
  const { recordsDropped } = await log.compact();
  assert.ok(recordsDropped > 50, `runs of dropped records (${recordsDropped})`);
  const left = (await collect(db.stream())).map((record) => record.value.n);
  const shared = left.filter((n) => n % 3 !== 0);
  assert.ok(shared.length > 0 && shared.length < 100);

  const q = { query: [{ $filter: { value: { author: '@a' } } }, { $map: ['value', 'n'] }] };
  assert.equal(indexed.explain(q).index, 'author');
  assert.deepEqual(await collect(scanned.read(q)), shared);
  assert.deepEqual(await collect(indexed.read(q)), shared, 'served by the index');
  assert.deepEqual(await collect(indexed.read({ ...q, reverse: true, limit: 3 })), [...shared].reverse().slice(0, 3));

  for (const n of [1, 2, 4, 5]) assert.equal(await byN.get(n), undefined, `record ${n} was compacted away`);
  assert.deepEqual((await collect(byN.read({ gte: 0, lt: 200 }))).map((entry) => entry.value.n), left);
  assert.deepEqual((await collect(byKey.records('shared'))).map((record) => record.value.n), shared);
});

/**
 * An index view killed (SIGKILL) while it catches up resumes from what it committed, not from zero.
 *
 * The parent fills a native log with 400,000 small records (`{ n }`, n = 0, 1, …), closes it, and starts a child
 * process that opens the database with an index view `idx` (`index(1, (v, r) => [v.n % 1000, r.offset])`, whose
 * `map` counts its calls) and prints every `progress` event. The index commits each batch of 10,000 records in one
 * LMDB transaction together with its `since` and version, and progress is emitted after a batch is applied, so a
 * progress `since` is a committed point. The parent kills the child on the first progress line short of the log's
 * last record. It then reads the index's `meta` (in a copy of the killed database, straight from LMDB) and checks:
 * - every progress line of the child: `map` had been called exactly for the records up to that line's `since`;
 * - the committed `since` is at least the last progress `since` the child printed, short of the last record, and
 *   a batch boundary (a multiple of 10,000 records); the committed version is 1;
 * - reopened with the same version, the view maps exactly the records after the committed `since` (fewer than
 *   the whole log, and at most the records after the last progress `since`), starting with the first one after
 *   it, reports nothing, and the index ends complete and exact: one entry per record, `read` of `[k, *]` for a few
 *   k gives exactly the offsets of the records with n % 1000 === k;
 * - reopened with version 2 (keys `['v2', n % 1000, offset]`, so any version 1 entry left would show), the view
 *   reports the version change, maps every record again from the first, and no version 1 entry remains.
 * Should the child nevertheless catch up before the kill lands, the log is made bigger and the child run again.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { open as openLmdb, type Key } from 'lmdb';
import { Sluice } from '../../src/db/sluice.js';
import type { LogRecord } from '../../src/log/log.js';
import { index, type IndexKey, type IndexView } from '../../src/views/index-view.js';
import { copyDatabase, countUpTo, crashMidCatchUp, type Crash, type NumberedValue, assertCommittedBatches, crashChild } from './crash-harness.js';
import { temporaryDirectory } from '../helpers.js';
import { indexBatchRecords } from '../../src/limits.js';

type Value = NumberedValue;

const recordsFirst = 400_000;
const indexBatch = indexBatchRecords;
const attemptsMax = 3;
const viewName = 'idx';
const keysChecked = [0, 1, 500, 999];

const indexPathOf = (dir: string): string => join(dir, 'views', viewName, 'index.mdb');

/**
 * The child: opens the database with the `idx` view (version 1; `map` counts its calls) and prints one JSON line
 * per progress event, per report, and once caught up. It never exits by itself: the parent kills it.
 */
const childScript = crashChild(
  `import { index } from ${JSON.stringify(new URL('../../src/views/index-view.js', import.meta.url).href)};`,
  'mapped',
  `const view = db.use(${JSON.stringify(viewName)}, index(1, (v, r) => {
  mapped++;
  return [v.n % 1000, r.offset];
}));
await view.get([0, 0]);
print({ done: db.viewStatus(${JSON.stringify(viewName)}).since, mapped });`,
);



/** The index as LMDB holds it in a database that is not open: its meta, and every key with its offset. */
async function readLmdb(dir: string) {
  const root = openLmdb({ path: indexPathOf(dir), compression: false });
  try {
    const meta = root.openDB<number, string>({ name: 'meta' });
    const entries = root.openDB<number, Key>({ name: 'entries', encoding: 'ordered-binary' });
    const keys: Array<{ key: Key; offset: number }> = [];
    for (const { key, value } of entries.getRange({})) keys.push({ key, offset: value });
    return { since: meta.get('since'), version: meta.get('version'), keys };
  } finally {
    await root.close();
  }
}


/** The offsets of the records with n % 1000 === k, in order (record i has n = i). */
const offsetsOfKey = (offsets: readonly number[], k: number): number[] => offsets.filter((_, i) => i % 1000 === k);

/** Opens a copy of the crashed database with the index of `version`; counts the records `map` is called for while catching up. */
async function reopen(crash: Crash, name: string, version: number) {
  const dir = copyDatabase(crash.dir, name);
  const reports: string[] = [];
  const errors: string[] = [];
  let mapped = 0;
  let firstMapped = -1;
  const keyOf =
    version === 1
      ? (n: number, offset: number): IndexKey => [n % 1000, offset]
      : (n: number, offset: number): IndexKey => ['v2', n % 1000, offset];
  const db = await Sluice.open<Value>(dir);
  db.on('report', ({ message }) => reports.push(message));
  db.on('view-error', ({ offset, error }) => errors.push(`at ${offset}: ${error.message}`));
  const view: IndexView<Value> = db.use(
    viewName,
    index<Value>(version, (value, record: LogRecord<Value>) => {
      if (mapped === 0) firstMapped = record.offset;
      mapped++;
      return keyOf(value.n, record.offset);
    }),
  );
  const reads = new Map<number, { v1: number[]; v2: number[] }>();
  let since: number;
  // Counted once caught up: reads call `map` too, to verify each entry they return.
  let applied: number;
  try {
    await db.ready(viewName);
    applied = mapped;
    for (const k of keysChecked) {
      const v1: number[] = [];
      const v2: number[] = [];
      for await (const entry of view.read({ gte: [k, 0], lte: [k, Number.MAX_SAFE_INTEGER] })) v1.push(entry.offset);
      for await (const entry of view.read({ gte: ['v2', k, 0], lte: ['v2', k, Number.MAX_SAFE_INTEGER] })) {
        v2.push(entry.offset);
      }
      reads.set(k, { v1, v2 });
    }
    since = db.viewStatus(viewName).since;
  } finally {
    await db.close();
  }
  return { mapped: applied, firstMapped, reports, errors, reads, since, lmdb: await readLmdb(dir) };
}

describe('an index view killed while catching up', { timeout: 60_000 }, () => {
  const root = temporaryDirectory('sluice-crash-rebuild-index-');
  let crash: Crash | undefined;

  before(async () => {
    crash = await crashMidCatchUp({ root, childScript, countField: 'mapped', recordsFirst, attemptsMax, readCommitted: readLmdb });
  });

  it('resumes from its last committed batch and ends complete and exact', async (t) => {
    assert.ok(crash !== undefined);
    const { offsets, progressSince } = crash;
    const records = offsets.length;
    const covered = assertCommittedBatches(crash, indexBatch, (message) => t.diagnostic(message));

    const reopened = await reopen(crash, 'resume', 1);
    assert.deepEqual(reopened.errors, []);
    assert.deepEqual(reopened.reports, [], 'the same version reopens without a rebuild');
    assert.ok(reopened.mapped < records, `mapped ${reopened.mapped} of ${records}: not from zero`);
    const afterProgress = records - countUpTo(offsets, progressSince);
    assert.ok(reopened.mapped <= afterProgress, `mapped ${reopened.mapped}, more than the ${afterProgress} after the last progress`);
    assert.equal(reopened.mapped, records - covered, 'mapped exactly the records after the committed since');
    assert.equal(reopened.firstMapped, offsets[covered], 'started with the first record after the committed since');
    assert.equal(reopened.since, offsets[records - 1], 'the view is at the last record');
    for (const k of keysChecked) {
      const read = reopened.reads.get(k);
      assert.deepEqual(read?.v1, offsetsOfKey(offsets, k), `the entries [${k}, *]`);
      assert.deepEqual(read?.v2, [], `no entry ['v2', ${k}, *]`);
    }
    const { lmdb } = reopened;
    assert.equal(lmdb.keys.length, records, 'one entry per record');
    const wrong = lmdb.keys.filter(({ key, offset }) => {
      const i = countUpTo(offsets, offset) - 1;
      const [k, o] = key as [number, number];
      return offsets[i] !== offset || o !== offset || k !== i % 1000;
    });
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} entries not [n % 1000, offset] -> offset`);
    assert.deepEqual({ since: lmdb.since, version: lmdb.version }, { since: offsets[records - 1], version: 1 });
  });

  it('rebuilds from zero, leaving no version 1 entry, when the version changed since the kill', async (t) => {
    assert.ok(crash !== undefined);
    const { offsets } = crash;
    const records = offsets.length;
    t.diagnostic(`${crash.description}; reopened with version 2`);
    const reopened = await reopen(crash, 'new-version', 2);
    assert.deepEqual(reopened.errors, []);
    assert.equal(reopened.reports.length, 1, `one report: ${JSON.stringify(reopened.reports)}`);
    assert.match(reopened.reports[0] as string, /\bversion\b.*\b1\b.*\b2\b/);
    assert.equal(reopened.mapped, records, 'mapped every record again');
    assert.equal(reopened.firstMapped, offsets[0], 'started with the first record of the log');
    assert.equal(reopened.since, offsets[records - 1], 'the view is at the last record');
    for (const k of keysChecked) {
      const read = reopened.reads.get(k);
      assert.deepEqual(read?.v1, [], `no version 1 entry [${k}, *] left`);
      assert.deepEqual(read?.v2, offsetsOfKey(offsets, k), `the entries ['v2', ${k}, *]`);
    }
    const { lmdb } = reopened;
    const stale = lmdb.keys.filter(({ key }) => !Array.isArray(key) || key[0] !== 'v2');
    assert.deepEqual(stale.slice(0, 5), [], `${stale.length} entries not made by version 2`);
    assert.equal(lmdb.keys.length, records, 'one entry per record');
    assert.deepEqual({ since: lmdb.since, version: lmdb.version }, { since: offsets[records - 1], version: 2 });
  });
});
